//go:build poison

package resp

// poison is set by the poison build tag: a wire overwrites its consumed input
// once the batch that used it is done, and the loop driver overwrites the input
// it used (the loop's shared read buffer, or the connection's leftover) when
// OnData returns, so a command's argument kept past its batch or past OnData (an
// alias of the input buffer, where a copy was due) shows up as garbage in tests.
const poison = true

//go:build poison

package memcache

// poison is set by the poison build tag: both drivers overwrite the input a
// read or an OnData consumed once it returns, so a line or block kept past it (an
// alias of the read buffer, where a copy was due) shows up as garbage in tests.
const poison = true

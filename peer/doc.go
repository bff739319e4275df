// Package peer is dynakv's internode protocol: the one registry of message types
// (MsgType), the request and reply types with their codecs, the Caller that sends
// a request to a node, and the Mux on which a node's components register the
// handlers of their types. The coordinator's replica reads and writes
// (MsgRead..MsgReadBatch), proxy forwarding (MsgForward) and repair's
// anti-entropy, handoff and purge messages (MsgRoots..MsgHolds) all go through it.
// It moves no bytes itself: cluster/transport carries them between nodes, and
// peertest.Network in memory.
//
// The registry rule: every message type is a constant in msgtype.go, in one
// MsgType space, and nowhere else; a number is never reused for another message,
// since a node of another version may still send it. Numbers are grouped by
// owner: 1-15 the replica protocol, 16-31 proxy forwarding, 32-63 repair.
//
// Invariants of the codecs: every body starts with a version byte (1); a decoder
// is strict (a body with trailing bytes, an unknown version, a count beyond what
// its bytes can hold or a number beyond its limit is refused with an error
// wrapping ErrBadMessage), never panics on any input, allocates at most a small
// multiple of its input, and returns values that do not alias the input; what
// decodes re-encodes to bytes that decode to the same value. The fuzz targets of
// this package check all of it. Records travel in vclock's encoding, so a record
// on the wire is the record on disk.
//
// Concurrency: the codecs are pure functions. A Mux is filled with Handle before
// it serves (Handle panics on a type registered twice, a programming error), then
// ServeCluster may be called from any number of goroutines; it never panics on
// network input: an unknown type is an error.
package peer

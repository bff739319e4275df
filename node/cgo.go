//go:build cgo

package node

// pebbleManualOnHeap: built with cgo, Pebble's manual allocator (block cache,
// memtables) uses C's malloc, off the Go heap.
const pebbleManualOnHeap = false

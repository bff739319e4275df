//go:build !cgo

package node

// pebbleManualOnHeap: built without cgo, Pebble's manual allocator (block
// cache, memtables) takes its memory from the Go heap.
const pebbleManualOnHeap = true

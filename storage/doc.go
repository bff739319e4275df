// Package storage is a node's local replica store on Pebble: the records (DVV sets)
// of the keys this node holds, grouped by partition, plus node metadata.
//
// Layout (every Pebble key starts with a one-byte space tag):
//
//	'd' | partition (be16) | xxhash64(key) (be64) | key   -> record (vclock.Set binary)
//	'x' | reap time ms (be64) | partition (be16) | hash (be64) | key -> empty (expiry index)
//	'm' | name                                            -> metadata value
//
// A key's partition is xxhash64(key) mod Q, the same function ring.PartitionOf
// computes, so keys never move between partitions and one partition is one
// contiguous key range: it can be iterated, streamed and dropped on its own. Inside
// a partition records are ordered by key hash, which gives SCAN a stable integer
// cursor and lets anti-entropy read one hash segment with a range scan.
//
// Invariants:
//
//   - Update is the only way a record changes and is atomic per key: the read, the
//     caller's merge and the write happen under the key's lock, and the record, its
//     expiry-index entry and the live-key count move together in one Pebble batch.
//   - A write is acknowledged only after Pebble synced it to its WAL, so a node killed
//     with SIGKILL (or by power loss, on a disk that honours fsync) restarts with every
//     acknowledged write. With Config.InMemory the data lives on Pebble's in-memory
//     filesystem and ends with the process, by design (a cache tier).
//   - The expiry index holds an entry for exactly the records whose every value has an
//     expiry (the record is dead once the last one passes); the reaper deletes those
//     records after re-checking them under the key lock, so a write racing the reaper
//     always wins.
//   - Records are opaque to Pebble; decoding is vclock.DecodeSet, which is fuzzed.
//
// A Store is safe for concurrent use. Its only goroutine is the reaper, started by
// Open and stopped by Close.
package storage

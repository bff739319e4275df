// Package tictac is the Merkle tree of anti-entropy: per partition a tictac tree
// (after Riak's tictac AAE) whose levels are XORs, so that a write updates it with no
// reads and no rebuild, and whose diff with another replica's tree names the few
// segments whose keys must be compared. It is pure: no I/O, no goroutines, no clocks;
// it imports nothing of dynakv's. repair/ sends the hashes between nodes; storage/
// feeds the trees as their storage.Observer.
//
// # Shape
//
// A partition's tree has Segments (1024) leaves, grouped SegmentsPerBranch (32) to a
// branch, Branches (32) branches, and a root. A key whose hash is h (the store's
// key hash, whose bottom bits pick the partition) lives in leaf SegmentOf(h), the top
// 10 bits of h, so every leaf of a partition is used and SegmentRange(s) is one
// contiguous range of hashes: the keys of a segment are one range scan. A record's
// contribution to its leaf is ItemHash(key, encoding), never 0; no record counts 0.
//
// # Invariants
//
//   - Every level is the XOR of the one below it: a leaf is the XOR of its records'
//     item hashes, a branch of its leaves, the root of its branches. Replacing item
//     old by next XORs old^next into one leaf, its branch and the root; so a tree
//     depends only on the set of (key hash, item hash) pairs it holds, not on the
//     order they came and went in, and two replicas holding equal records have equal
//     trees, bit for bit.
//   - Equal hashes at a level are taken to mean equal contents below it. That is
//     false only on a 64-bit collision; ItemHash covers the key as well as the
//     record, so one needs two different records of the same segment to collide.
//   - A diff descends: DiffBranches returns the branches whose hashes differ;
//     DiffSegments, given those (ascending), the segments under them whose leaves
//     differ, ascending. Leaves that differ under a branch whose hashes agree
//     (their differences cancel out) are not found: a 64-bit collision again. The
//     scripts in testdata/ tell these stories.
//   - Trees (one tree per partition) kept as a store's Observer equal the trees a
//     Rebuild from that store computes, provided the store reports every change
//     after it is made and before any later change of its partition, and keeps
//     writers out while Rebuild scans a partition (PartitionLocker).
//
// # Concurrency
//
// A Tree is plain data, not safe for concurrent use. Trees is safe for concurrent
// use: each partition's tree has its own lock, and every method reads or changes one
// partition at a time (Rebuild one after the other).
package tictac

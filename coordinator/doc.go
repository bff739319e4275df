// Package coordinator runs Dynamo's request paths for one key: reads that merge the
// replicas' records, writes that give a value a new dot of this node's actor and
// store the result, and read-modify-writes that do both under the key's lock.
//
// This version coordinates over the local replica only (N = R = W = 1). The cluster
// issue extends the same three calls to N replicas with quorums, sloppy quorum,
// hinted handoff and read repair; callers (proxy/) do not change.
//
// Invariants:
//
//   - A write is acknowledged only after the record that holds it is durable in
//     storage.
//   - Every write's causal context is explicit: Put takes the client's clock; Modify
//     uses the record its function saw, so the write supersedes exactly what was read.
//   - Dots are never reused: a node's actor id carries the incarnation of its data
//     (see node/), and a fresh entry starts at a monotonic, clock-based floor.
//   - The coordinator knows no wire protocol and no command semantics: liveness,
//     expiry and sibling resolution are the caller's, passed in as functions.
//
// A Coordinator is safe for concurrent use and owns no goroutines.
package coordinator

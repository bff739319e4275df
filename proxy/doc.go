// Package proxy is dynakv's front door: the semantics of familiar Redis and memcached
// commands (GET, SET NX, INCR, APPEND, EXPIRE, gets/cas, ...) built on Dynamo
// operations, shared by both protocol front ends (resp/ and memcache/), which only
// parse and encode.
//
// Every command is an Op, a plain value that a later version can forward to a node on
// the key's preference list, executed by Do into a Result. Front ends build Ops and
// call Do; keyspace-wide commands (DBSize, Scan, Keys, RandomKey, FlushAll) are
// methods of their own.
//
// Semantics (DESIGN.md, "Familiar commands on top of Dynamo"):
//
//   - A value is live when it is not a tombstone and not expired. A key exists when
//     its record holds a live value. Plain reads return the live sibling with the
//     greatest (timestamp, dot), so every node answers alike; DGET returns them all.
//   - Plain writes (SET, DEL, INCR, APPEND, EXPIRE, cas ...) are read-modify-writes
//     through the coordinator with the context of the record they read: they supersede
//     every sibling they saw (last writer wins for plain clients). Read-modify-writes
//     keep the current value's expiry and flags unless the command changes them, as
//     Redis and memcached do.
//   - DPUT and DDEL write with the client's context: they supersede exactly the
//     siblings that context covers.
//   - A memcached cas unique is the 64-bit hash of the record's context
//     (vclock.Clock.Hash): cas succeeds when the current context hashes to it.
//
// Errors are the sentinel values below; resp/ and memcache/ map them to wire text.
// A Proxy is safe for concurrent use and owns no goroutines.
package proxy

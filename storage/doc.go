// Package storage is a node's local replica store on Pebble: the records
// (record.Record; a string key's is its DVV set, encoded exactly as vclock.Set)
// of the keys this node holds, grouped by partition, the hints it keeps for
// unreachable nodes, plus node metadata.
//
// Layout (every Pebble key starts with a one-byte space tag):
//
//	'd' | partition (be16) | xxhash64(key) (be64) | key   -> record (record.Record binary)
//	'e' | partition (be16) | xxhash64(key) (be64) | uvarint len(key) | key |
//	      type | sub (0) | xxhash64(elem) (be64) | elem   -> element (crdt.Field binary)
//	'h' | len(owner) (u8) | owner | key                   -> hinted record (record.Record binary)
//	'x' | reap time ms (be64) | partition (be16) | hash (be64) | key -> empty (expiry index)
//	'g' | death time ms (be64) | partition (be16) | hash (be64) | key -> empty (grave index)
//	'm' | name                                            -> metadata value
//	'm' | "index"                                         -> the indexes' rule version
//	'm' | "epoch/" | partition (be16)                     -> actor epoch (be64)
//
// A key's hash is ring.KeyHash(key) (xxhash64) and its partition ring.PartitionOf
// (the hash mod Q), so keys never move between partitions and one partition is one
// contiguous key range: it can be iterated, streamed and dropped on its own. Inside
// a partition records are ordered by key hash, which gives SCAN a stable integer
// cursor and lets anti-entropy read one hash segment with a range scan.
//
// A collection layer (a set's, a hash's: issue 20) keeps its elements as element
// keys in the same partition and hash as the key's record, its header, so they
// share the header's lock stripe; a partition is the two ranges 'd'|p and 'e'|p.
//
// Invariants:
//
//   - UpdateKey is how a header and its elements change together: under the key's
//     lock, the header and every element write of one call commit in one Pebble
//     batch (group commit, as Update), and the header's derived fields (Coll.Len,
//     Bytes, Buckets: derived.go) move in the same batch from the stored ones by
//     the element writes, never from what a caller put there. Element keys exist
//     only under a header with a collection layer of their type: UpdateKey and
//     Update refuse a header that would leave any without (ErrBadHeader). The
//     partition drops delete both ranges in one batch. Readers outside a
//     transaction (GetElems, ScanElems) read one Pebble snapshot, so a header and
//     its elements are consistent. Not yet: element keys in the memory sums, the
//     Merkle trees beyond the header (whose Buckets change with every element),
//     hints, WriteSet.UpdateKey, clears and the sweep (issue 20's S4, later parts).
//   - Update is the only way a record changes and is atomic per key: the read, the
//     caller's merge and the write happen under the key's lock, and the record, its
//     expiry-index entry and the live-key count move together in one Pebble batch.
//   - A write is acknowledged only after its WAL record is in the operating system
//     (SyncInterval, the default: Pebble's WAL sync is a write(2) there, and a
//     goroutine fsyncs the WAL every Config.SyncInterval, on rotation and on Close)
//     or on disk (SyncAlways: fsynced, concurrent writes sharing one fsync), so a
//     node killed with SIGKILL restarts with every acknowledged write; with
//     SyncAlways so does one that lost power, on a disk that honours fsync.
//     SyncNone is for tests and benchmarks. Metadata (PutMeta) is always fsynced.
//     A meta entry marks the directory open while a Store uses it, with its sync
//     mode and the kernel's boot id, so the next Open knows (Unclean, durable until
//     ClearUnclean) that the last one did not close and how it ran, and the node
//     does not reuse version-vector dots whose writes may be lost. With
//     Config.InMemory the data lives on Pebble's in-memory filesystem and ends
//     with the process, by design (a cache tier).
//   - A failed engine is never used again (Failed, ErrEngineFailed). Pebble panics
//     (or calls its logger's Fatalf, which panics) when it cannot go on: a failed
//     WAL write or fsync, corruption; often holding its commit locks, so that
//     every later commit would hang. Every exported method that calls Pebble
//     recovers at its boundary (enter, and exit deferred right after it; the group
//     commit's leader for its group): the panic fails the store, once (the first
//     failure is kept, logged with its stack, and Failed is closed), and is the
//     call's error, wrapping ErrEngineFailed. From then on every call returns that
//     error without touching Pebble, so the store acknowledges no other write, and
//     Close returns it at once (calls stuck in Pebble stay stuck; Pebble is not
//     closed). A failed fsync of the WAL by the store itself (SyncInterval's
//     periodic one, or one for metadata) fails the store the same way: after a
//     failed fsync the kernel may have dropped the pages, so no later success can
//     be trusted. The owner of the store (node/, then cmd/dynakv) watches Failed
//     and ends the process with a non-zero status, for a supervisor to restart it
//     on repaired storage. Limits: a panic on one of Pebble's own goroutines (a
//     flush, a compaction) is beyond any recover of ours and crashes the process,
//     as it always did; a call already inside Pebble when it failed may never
//     return; and a panic in the store's own code is taken for the engine's, since
//     the store cannot tell that its state is sound. A panic in code of the caller
//     that a call runs (an UpdateFunc, a Scan callback, the Observer, a
//     DropPartitionIf or GravesFrom condition: see guest) is not the engine's: it
//     leaves the store as it is and goes on through the call, carrying its
//     original value and stack, for the caller to handle.
//   - Synced record writes (Update, the reaper's rewrites) and Sync go through
//     group commit (committer): the writers waiting at one moment share one merged
//     Pebble batch, one WAL write and one sync, and each gets the group's result.
//     (Hint writes, partition drops and metadata commit alone.) A merged
//     batch is atomic, so a group fails or succeeds as one; the writers hold their
//     key locks throughout and nothing in a commit waits for a key lock.
//   - A WriteSet (an event loop's writes of one iteration) stages read-merge-
//     writes without ever waiting: Update takes a key's lock stripe with TryLock
//     and keeps it until the set ends, or returns ErrWouldBlock having done
//     nothing (stripe busy, set at its bound of 256 writes or 1 MiB); a key's
//     writes in the set run in order on what the ones before left, as Update
//     one by one would, and the set's Get sees them. Commit makes one Pebble
//     commit (through group commit when synced), then runs each changed key's
//     bookkeeping (cache, counts, memory sums, Observer) from what was stored to
//     the set's last result, then releases the stripes; a failed commit fails
//     every staged write. UpdateBatch (a replica's batch of writes) is a
//     WriteSet without bounds that first takes the lock stripes of its keys in
//     ascending order (as the partition drops take theirs), so it never finds
//     one busy. A set taking stripes in any order cannot deadlock with the
//     ascending lockers, since it never waits.
//   - Key locks are 65536 stripes (a key's is its hash mod 65536), so that the
//     sets of several event loops, holding up to 256 stripes each for an
//     iteration, rarely meet; they cost 512 KiB per store. A single partition's
//     drop and ExclusivePartition take only that partition's stripes; FLUSHALL,
//     DropHints and ranges of partitions take them all.
//   - The record cache (recordCache) holds exactly what Pebble holds for each key it
//     caches: every change updates it under the key's lock after the commit, misses
//     fill it only under the key's lock, and partition drops reset it under the
//     dropped keys' locks (a reset only loses entries of the others).
//   - The expiry index holds an entry for exactly the records holding a value
//     (not a tombstone) with an expiry, at the earliest such expiry (ReapTime).
//     The reaper never deletes a record: once an entry is due it rewrites the
//     record with every value expired by then turned into its tombstone
//     (vclock.Bury: dot, Timestamp and Expiry kept, data and flags dropped, the
//     same bytes on every replica), after re-checking it under the key lock, so a
//     write racing the reaper always wins; the rewrite moves the entry to the
//     record's next expiry, if any. Siblings that never expire do not hold the
//     others back: an expired value keeps no data, and a record whose plain-GET
//     winner expired gets a tombstone as its winner, so DBSIZE agrees with GET
//     within a reaper pass. An expired value thus stays causal history, and the
//     value it replaced cannot come back from a replica that missed the
//     overwrite; a record left with tombstones only moves to the grave index and
//     is purged by the tombstone rule like a DEL's.
//   - Every data directory Open returns is at Pebble format formatCurrent
//     (format.go): a new store is created at it, and an older directory (binaries
//     before it set no format: Pebble v1's most compatible one) is ratcheted to it
//     during Open, once, logged before and after, its RocksDB-format tables
//     rewritten; so Pebble v2, which opens nothing below FormatFlushableIngest,
//     reads every directory this binary has opened. A ratchet cannot be undone.
//   - Both indexes are as the current rules want them from Open on: a data
//     directory whose metadata names an older index version (metaIndexVersion;
//     none, from the binary before issue 15, which indexed fewer records) gets
//     every record's entries added during Open's counting scan, once.
//   - The grave index holds an entry for exactly the records whose every value is a
//     tombstone, at the time the newest one died (GraveTime: its write time, or the
//     expiry of one the reaper made), so tombstone purge finds the ones past the
//     grace period; DeleteIf removes a record only if it still encodes exactly as
//     the caller saw it. Nothing here decides that a grave may go: repair's purge
//     deletes one only after every member that may hold the key answered, twice,
//     that it holds exactly that record or nothing (no record, no hint).
//   - Count (DBSIZE) counts the records whose plain-GET winner, the greatest
//     sibling by (Timestamp, dot) with tombstones and expired values included
//     (vclock.Winner), is not a tombstone: an expired value counts until it is
//     reaped, as in Redis, whatever its siblings. It does not depend on the time.
//   - Memory counts logical bytes (memory.go): a record's data key, encoding and a
//     fixed overhead, plus its expiry and grave index entries, summed per partition
//     as live (some value is not a tombstone) or graves (tombstones only), with
//     totals, and the hints' bytes. Every change adds its difference after its
//     commit under its key lock, as the counts do; the partition drops zero the
//     dropped partitions (DropAll the hints too) under every key lock; Open
//     recounts in its counting scans. So the sums equal a full recount at every
//     quiescent point, and Memory is O(1). Physical gives Pebble's own figures
//     (files and memtables), which the logical ones only approximate.
//   - A partition's actor epoch (Epoch) is 0 until the partition is first dropped
//     and is raised by every drop (DropPartition, DropPartitionIf, DropAll) in the
//     drop's own Pebble batch, so no crash keeps the drop without the new epoch or
//     the reverse, and the epochs survive restarts (loaded at Open). The drop's
//     commit is not fsynced apart: whatever later write is durable, the drop before
//     it in the WAL is too, and a stop that loses both gives the node a new actor
//     id anyway (node/'s incarnation after an unclean stop that may have lost
//     writes). Writers read the epoch under the key lock, which a drop holds.
//   - Config.Observer, when set, hears of every record change (old and new encoding)
//     and every partition drop after the commit, under the keys' locks, so anti-entropy
//     can keep Merkle trees exactly in step without reading anything back.
//     ExclusivePartition holds the locks of every key of one partition while its
//     function runs, so a tree rebuilt from a scan inside it sees no change between
//     its reset and its scan, whatever the reaper or a writer does meanwhile.
//   - Records are opaque to Pebble; decoding is record.Decode, which is fuzzed.
//
// Durability: a write is durable when its WAL record survives what the sync mode
// promises (a killed process for SyncInterval, a power loss for SyncAlways; see
// above). Update and UpdateBatch return once their writes are durable;
// UpdateNoSync returns once its write is visible, and it is durable once a later
// Sync (or any synced commit, which syncs the whole WAL before it) has returned.
// That pair is the one way to share a sync: a caller makes many writes with
// UpdateNoSync and one Sync before it acknowledges any of them, and concurrent
// synced commits share one sync through group commit. A caller must not
// acknowledge a write, nor a decision taken on reading one (a record read may be
// another caller's UpdateNoSync write), before it is durable. With SyncNone
// nothing is ever synced and Sync does nothing. Who decides when to sync is above
// this package: coordinator.WriteOptions.Durability and proxy.Session.
//
// Hints (hinted handoff): a fallback that accepted a write for an owner it could not
// reach keeps the record as a hint for that owner, apart from its own data. Hints
// are never counted by Count (DBSIZE), never visited by Scan or anti-entropy, never
// dropped by DropPartition and never reaped (the owner applies expiry once it has the
// record), but they are as durable as records and survive restarts. The owner name
// (1 to 255 bytes, ErrHintOwner otherwise) is length-prefixed, so owner "a" and owner
// "ab" never share a key range, and one owner's hints are a contiguous range in key
// order. UpdateHint is the read-merge-write of a hint under the same per-key stripe
// locks as Update; DeleteHint removes a hint only if it still encodes exactly like the
// record the owner acknowledged, so a hint merged further while it was in flight is
// replayed again. A key's hints are found with GetHint for each of HintOwners:
// tombstone purge waits while any node keeps one. HintCount is kept incrementally (counted once at Open). DropAll
// (FLUSHALL) drops every hint too, or a later replay would resurrect flushed data;
// DropHints drops one owner's hints when the owner leaves the ring.
//
// A Store is safe for concurrent use. Its goroutines are the reaper and, in
// SyncInterval mode on disk, the WAL fsync loop, started by Open and stopped by
// Close (after a failure they stop by themselves, and Close does not wait for
// them); group commit runs on its writers' goroutines.
package storage

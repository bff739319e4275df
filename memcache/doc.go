// Package memcache is dynakv's memcached text-protocol front end: it parses the
// classic commands (get, gets, gat, gats, set, add, replace, append, prepend, cas,
// incr, decr, delete, touch, flush_all, stats, version, verbosity, quit) and the meta
// commands (mg, ms, md, ma, mn, me), calls proxy/, and encodes memcached's replies
// byte for byte. It holds no Dynamo logic and imports proxy/ only.
//
// Invariants:
//
//   - Parsing is I/O-free: reader.go finds command lines and data blocks in the
//     bytes of each read (resumable, keeping only an incomplete command's bytes);
//     parse.go tokenizes a line. Two drivers run a connection (Config.IOModel),
//     with the same bytes out for the same bytes in. The goroutine driver: one
//     goroutine per connection reads up to 8 KiB, runs that read's whole
//     commands in order and then flushes their replies, in one write when they
//     fit in the 8 KiB write buffer; at once after mn, and before closing after
//     quit. The loop driver (loop.go; plain TCP on Linux, the default there):
//     an event loop feeds each read to the same reader and runs the whole
//     commands inline, in try mode (the single-node fast path: keys only this
//     node holds, reads or one write per command, staged in the loop's write
//     set and committed with the loop's other fronts' writes before any reply
//     of the iteration leaves: internal/loopcommit); from the first that would
//     block on, it copies the commands out, pauses the connection and hands
//     them to a bounded pool goroutine, which runs them with the same code and
//     posts the replies back; the connection resumes once they are queued, so
//     its commands run in order and never overlap. Before authentication both
//     take one command at a time, and the loop driver hands every one off.
//   - Each connection runs its commands through one proxy.Session, flushed (one WAL
//     sync for the batch's writes) before any reply bytes reach the socket
//     (syncingWriter): no reply acknowledges a write before it is durable, and when
//     the flush fails no reply is written. A command with nothing after it in its
//     read is the last of its batch, and its write commits with its own sync.
//   - Nothing is allocated because a header claims it: a data block is checked against
//     MaxValueBytes before it is read, buffers grow with the bytes that actually
//     arrive, and a refused block is discarded as it streams in (its error reply
//     leaves before the server waits for the block). A command line without "\n"
//     may grow to 2048 bytes (4 MiB for a get/gets multi-get, as memcached allows
//     large multi-gets); past that the client gets "CLIENT_ERROR line too long" and
//     is disconnected. A line that arrives whole with its "\n" may be longer, up to
//     8 KiB (so whether a line a little over 2048 bytes is accepted depends on how
//     much of it arrived at once, as in memcached).
//   - A write of replies that does not complete within Config.WriteTimeout (the client
//     stopped reading) ends the connection; replies are buffered 8 KiB at a time (64
//     KiB on the loop driver), so a client that does not read costs at most that. A connection beyond MaxClients is
//     answered "ERROR Too many open connections" without stalling the accept loop.
//   - With Config.Password, a connection must first authenticate as memcached 1.6's
//     ASCII authentication (-Y) has it: see auth.go.
//   - Keys and values handed to the proxy are fresh copies: the proxy and the
//     coordinator may keep them after Do returns (background replication, read repair).
//   - Every proxy error becomes one memcached line through the single table in
//     errors.go.
//   - Server owns the accept loop's connections (through internal/netserve, the
//     skeleton shared with the RESP front and the cluster transport): Close stops
//     accepting, closes every connection, cancels in-flight proxy calls and waits for
//     the connection goroutines, the handed-off commands and the event loops. Close
//     is idempotent; Serve returns nil after Close and fails when called a second
//     time. A panic serving a connection closes that
//     connection only (Config.PanicPolicy: netserve.Crash ends the process instead).
//
// A Server is safe for concurrent use.
//
// Semantics follow memcached 1.6 (proto_text.c), including its quirks: "noreply" hides
// error lines too; a malformed storage command line is answered with "CLIENT_ERROR bad
// command line format" and its data block is then read as commands; a data block
// whose last two bytes are not "\r\n" is "CLIENT_ERROR bad data chunk" and the rest of
// the stream is read as commands; an over-limit value is answered "SERVER_ERROR object
// too large for cache", its block is swallowed and (for set) the old value is deleted;
// an unknown command ending in an "HTTP/..." token closes the connection unanswered.
// Exptime: 0 never expires, negative expires at once, up to 30 days is relative,
// larger is absolute unix time (Config.Now is the clock).
//
// Where dynakv differs from memcached:
//
//   - A cas unique is the 64-bit hash of the key's causal context (see proxy/). Every
//     write changes it, including touch, gat and mg with T (memcached keeps the cas
//     on touch); gats and mg c report the unique after the touch.
//   - decr does not space-pad the stored number (memcached may; the protocol tells
//     clients not to rely on it).
//   - A line longer than the limit gets "CLIENT_ERROR line too long" before the
//     connection is closed; memcached closes silently.
//   - stats reports this node's counters; curr_items is the proxy's key count;
//     get_expired and get_flushed are always 0; evictions, limit_maxbytes and
//     bytes are 0 unless the node gives them. Extra lines come from Config.Stats
//     (Config.Settings for "stats settings") and replace same-named ones.
//     "stats" subcommands: reset, settings, items, slabs, sizes; others are ERROR.
//   - Meta commands: the b (base64 key), c, f, k, O, q, s, t, v, T, N, C, F, M, D, J
//     flags work as in memcached; q hides EN (mg), HD (ms), HD and NF (md) and a
//     successful reply, VA included (ma). mg N returns W to the client whose request
//     created the item; Z and X are never returned (no per-item token state), R is
//     accepted and never wins, u, P and L are accepted and ignored. md I deletes the
//     item instead of marking it stale; ms I is ignored. E (explicit cas), h, l and md x
//     cannot be honoured by a cas that is a context hash or without access tracking,
//     and are rejected as unknown flags ("CLIENT_ERROR invalid flag", or for md and
//     ma "CLIENT_ERROR invalid or duplicate flag"), as memcached versions without
//     them do. The flags' rules are the proxy's: C is proxy.CondCAS (one conditional
//     read-modify-write; C0 is a condition no item meets for ms and md, and no
//     condition for ms append/prepend and ma, as in memcached), N is Op.Vivify, and
//     ma's T is a second write after the incr (Op.SetExpiry), so a concurrent
//     writer may be ordered between the two.
//   - A proxy error in the middle of a multi-key get ends the reply with the error
//     line in place of END (memcached cannot fail there).
//   - The binary protocol is not spoken; its requests are answered as unknown text.
package memcache

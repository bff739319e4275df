// Package resp is dynakv's Redis protocol front end: it parses RESP2, RESP3 and
// inline requests, runs each command through proxy, and encodes the reply. It holds
// no Dynamo logic and imports proxy only.
//
// # Layers
//
// A Server accepts connections with internal/netserve (the accept loop,
// MaxClients, the registry CLIENT LIST reads, Close, the write timeout), which
// drives each connection one of two ways (Config.IOModel). The goroutine driver
// runs one goroutine per connection: it reads the client's bytes into the
// connection's input buffer (wire.go), runs the pipelined batch of complete
// commands found there, and flushes the replies of a batch once (with
// github.com/tidwall/redcon's Writer). The loop driver (loop.go; Linux, plain
// TCP, the default there) serves connections on event loops (internal/evloop):
// the loop parses the batch with the same reader and runs the commands it can
// inline, for keys only this node holds (a single node, N=1 or a one-member
// ring), without ever waiting (the command table's loop flag;
// proxy's Session.Try, their writes staged in the loop's write set, which is
// committed with its sync before any reply of the iteration leaves). From the
// first command that would wait on, it pauses the connection and hands a copy
// of the commands to a goroutine of a bounded pool, which runs them through the
// same code and posts the replies back; the connection resumes once they are
// queued, so its commands run and answer in order. TLS connections use
// the goroutine driver. Requests are parsed once, by a framer
// (frame.go) that applies Redis 7.2's request-parsing rules and limits and yields
// each command's arguments as slices of the input buffer, without copying them, so
// malformed input is answered exactly as Redis answers it — "-ERR
// Protocol error: invalid multibulk length", "... invalid bulk length", "...
// expected '$', got 'x'", "... unbalanced quotes in request", "... too big inline
// request", "... too big mbulk count string", "... too big bulk count string",
// "... unauthenticated multibulk length", "... unauthenticated bulk length" —
// after the replies to the commands before it, and then the connection is closed.
// What a header claims is never allocated: the input buffer grows with the bytes
// that arrive, and a command arriving in many reads (a large value) is parsed
// once, the framer resuming where it stopped. Limits: an argument up to Config.ProtoMaxBulkLen (512 MiB), an inline
// request or header line up to 64 KiB; before AUTH (when a password is set), 10
// arguments of 16 KiB, and commands are parsed one at a time so that AUTH lifts
// the limits for the next command of the same pipeline, as in Redis. Like Redis,
// "*0" and "*-1" are skipped, the two bytes after an argument are not checked, and
// a NUL byte before a header's or an inline request's line end hides it (Redis
// finds line ends with strchr), so such a request waits until it is too big.
//
// Durability: each connection runs its commands through one proxy.Session, and
// wire.Write flushes it before any reply bytes leave the process, so no reply
// acknowledges a write that is not durable yet and a pipelined batch of writes
// shares one WAL sync; when the flush fails, no reply of the batch is written and
// the connection ends. A command is the last of its batch when nothing more of the
// batch is waiting to run: its write then commits with its own sync.
//
// Batches (batch.go): in a cluster (Config.Cluster set, Config.NoBatch not), a
// pipelined batch's runs of plain SET, GET and single-key DEL (64 commands at
// most each) run their ops ahead with one proxy.DoBatch, and MGET reads its keys
// the same way; each command still runs through its handler, which takes its
// op's outcome from the session (proxy.Session.Preset), so replies, errors and
// counters are those of running it alone, and a run never crosses another
// command (QUIT, AUTH, MULTI...). Batched writes are durable when DoBatch
// returns.
//
// Output is bounded too: when a pipelined batch's replies pass
// Config.OutputBufferLimit they are written before the batch's next command runs,
// and when one command's reply passes it (MGET of many large values, KEYS, SCAN
// with a large COUNT) the part built so far is written before the command goes on,
// so a client costs the node at most the limit plus one element of a reply. A write
// that does not complete within Config.WriteTimeout (the client stopped reading)
// ends the connection. Redis instead builds a reply whole and, for the normal
// client class, has no output limit by default (client-output-buffer-limit normal
// 0 0 0); dynakv never closes a client for its output size, only for not reading.
// A command that fails after part of its reply was written (an MGET key without
// quorum) cannot answer an error in its place: the connection is closed. A
// connection beyond Config.MaxClients is answered "-ERR max number of clients
// reached" and closed, off the accept loop (netserve's refuser), so a TLS client
// that never handshakes (the node wraps ln) cannot stall accepting.
//
// Commands are looked up in a table (server.go) that holds Redis's arity, flags
// and key positions and also answers COMMAND. Existence, arity and
// authentication are checked in Redis's order, so an unknown command is "unknown
// command" even before AUTH. Handlers write to a Reply (reply.go), an append-only
// RESP2/RESP3 encoder, so they are tested without sockets. A handler that panics
// answers "-ERR internal error" and ends its connection, not the node (unless
// Config.PanicPolicy is netserve.Crash, for tests).
//
// Every error proxy returns becomes wire text through one table (errors.go);
// an error it does not know is logged and answered "-ERR internal error".
//
// # Commands
//
// Connection: PING ECHO QUIT HELLO AUTH SELECT CLIENT (SETNAME GETNAME SETINFO ID
// LIST INFO HELP). Strings: GET SET SETNX SETEX PSETEX GETSET GETDEL GETEX MGET
// MSET MSETNX INCR DECR INCRBY DECRBY INCRBYFLOAT APPEND STRLEN GETRANGE SUBSTR
// SETRANGE SETBIT GETBIT LCS. Keyspace: DEL UNLINK EXISTS TOUCH EXPIRE PEXPIRE
// EXPIREAT PEXPIREAT EXPIRETIME PEXPIRETIME TTL PTTL PERSIST TYPE RENAME RENAMENX
// COPY DBSIZE KEYS SCAN RANDOMKEY FLUSHALL FLUSHDB. Server: INFO TIME COMMAND
// (COUNT DOCS INFO LIST GETKEYS HELP) CONFIG (GET SET RESETSTAT REWRITE HELP)
// FUNCTION (FLUSH HELP: there are never functions to flush). Dynamo:
//
//	DGET key                              -> *2: context ("" if none), array of live siblings
//	DPUT key context value [EX s | PX ms] -> the new context
//	DDEL key context                      -> the new context
//
// A context that does not parse is "-ERR invalid causal context". Any other command
// is Redis's "-ERR unknown command 'x', with args beginning with: 'a' 'b' ". After
// HELLO 3, replies use RESP3 types where Redis does: maps (HELLO, CONFIG GET,
// COMMAND DOCS), sets (COMMAND flags), the null "_", verbatim strings (INFO, CLIENT
// LIST, CLIENT INFO); DGET stays an array.
//
// # Differences from Redis 7.2
//
//   - One database (SELECT 0 only), one user ("default"); no scripting, pub/sub,
//     client tracking, or types other than strings.
//   - No transactions: MULTI is "-ERR MULTI is not supported by dynakv
//     (Dynamo-style store: no transactions)", every command after it is refused
//     until EXEC (-EXECABORT) or DISCARD, so a client's MULTI ... EXEC batch never
//     half-applies. WATCH is an unknown command.
//   - Multi-key commands (MSET, MSETNX, DEL of many keys) are not atomic across
//     keys: each key is its own Dynamo object. MSETNX checks, then writes each key
//     with NX. EXPIRE ... XX LT checks XX with a read before the conditional write.
//     RENAME, RENAMENX and COPY read the source, write the destination, then (RENAME)
//     delete the source if it is unchanged (proxy.Copy).
//   - A command has at most 1024*1024 arguments (Redis 7.2: 2^31-1), the limit
//     of Redis before 6.2. A command's input is bounded by 1 GiB (Redis's
//     client-query-buffer-limit); past it the connection is closed without reply.
//   - INCRBYFLOAT uses float64, not long double: increments beyond float64's
//     range are "value is not a valid float".
//   - FLUSHALL ASYNC flushes synchronously. DBSIZE and INFO keyspace count
//     expired keys not yet reaped, as Redis does; expires= and avg_ttl= are 0.
//   - CONFIG GET answers a small table of parameters; the harmless ones can be
//     CONFIG SET and are stored without effect (maxclients takes effect); others
//     are "can't set immutable config". requirepass is not shown. maxmemory and
//     maxmemory-policy belong to the node (Config.Tunables) and take effect at once.
//   - Over maxmemory (Config.OOM), commands flagged denyoom get Redis's -OOM
//     before they run; INFO fields the node gives (Config.Info) replace resp's
//     same-named ones, so used_memory is the node's figure, not the Go heap.
//   - CLIENT LIST shows Redis's fields; those dynakv has no counterpart for
//     (fd, qbuf, omem, ...) are 0.
//
// # Concurrency
//
// A Server's methods are safe for concurrent use. A connection's state is used by
// its own goroutine (on the loop driver: by its loop, and by the handoff
// goroutine while one runs its commands, in turn), except the fields CLIENT LIST
// reads, which are guarded. Close stops every goroutine the Server started (the
// loops, the handoffs) and waits for them; every proxy call runs under a context
// that Close cancels.
package resp

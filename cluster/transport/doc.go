// Package transport is the internode transport of a dynakv cluster: authenticated,
// pipelined TCP request/response between nodes on the cluster port (--cluster,
// default 7947). It moves bytes and nothing else: message types (typ) and payloads
// are entirely the caller's (node/ and the packages it wires register handlers
// and resolve node names to addresses), and it knows nothing of membership or of
// keys. Files: frame.go (frame codec, pure), auth.go (handshake, pure), clock.go
// (bounding a peer's clock, pure), transport.go (API, config, lifecycle, the shared
// frame writer), client.go (Call), server.go (serving peers), workers.go (the
// goroutines that run handler calls).
//
// Invariants:
//
//   - No request frame is written before both sides proved the cluster secret in
//     the handshake, and the `from` a Handler sees is the name the client proved.
//   - A request never runs after its caller gave up: the server refuses one whose
//     deadline (converted into its own clock, erring late) has passed, and the
//     caller then gets ErrLate, which means the handler certainly did not run.
//   - A Call error wrapping ErrNotSent means the request never left this node.
//   - Memory is bounded per peer and per connection: MaxQueue calls, MaxInflight
//     handler calls, MaxFrameBytes per frame, checked before anything is allocated.
//   - Every decoder of network input (the frame reader and both sides of the
//     handshake) validates strictly, never panics and is fuzzed.
//
// # Protocol
//
// A connection starts with the mutual handshake of auth.go: both sides prove the
// cluster secret with HMAC-SHA256 over fresh nonces, and the client names itself. A
// peer that fails is refused (the server logs a warning and counts it in
// Stats.RefusedHandshakes; the client's Call returns an error wrapping ErrAuth). After
// it, the client sends request frames and the server answers each with a response or
// an error frame carrying the same request id (frame.go). Replies may come in any
// order; the id pairs them. The protocol is versioned in the handshake and not
// compatible across versions: version 2 added clock readings in the hello and in
// request frames and late refusals; version 3 stands for the messages carried (peer/'s
// registry, forwarded ops in encoding 3), version 4 for peer.MsgReadBatch. A node
// refuses peers of any other version,
// so a cluster is upgraded all at once, not node by node.
//
// # Client side
//
// Each peer address has one connection, dialed lazily by a goroutine the transport
// owns and shared by all callers (pipelining). A call enters a bounded per-peer queue
// (MaxQueue calls queued or awaiting a reply; beyond it Call fails at once with
// ErrQueueFull); one writer goroutine drains the queue into a buffered writer and
// flushes only when the queue is momentarily empty, so concurrent calls share one
// write syscall; one reader goroutine completes calls by id. A call ends when its
// reply arrives, when its context is done (its entry is dropped and a late reply
// discarded) or when the connection fails (every pending call fails with an error
// wrapping ErrUnreachable). A failed dial or handshake, or a connection that broke
// before delivering any reply, starts an exponential backoff with jitter (BackoffMin
// doubling to BackoffMax); calls during the backoff fail fast with the dial's error
// instead of waiting. A connection that worked is redialed at once. Memory is bounded:
// the queue bound, a private copy of each request payload that is released once
// written, and a write deadline (a peer that stops reading for 5s is disconnected). A
// peer that stops answering without closing (SIGSTOP, power loss) is noticed when a
// call times out and the peer, owing replies, has sent nothing for 10s: the connection
// is dropped and redialed, instead of waiting minutes for TCP to give up.
//
// # Deadlines
//
// A request must not run after its caller gave up: a frame that sat in TCP's
// retransmission queue during a partition, or in the socket buffer of a stopped
// (SIGSTOP) process, would otherwise run seconds after its caller had answered its own
// client, and a write would then land after writes that client saw complete later.
// Every request carries the milliseconds left until the caller's deadline (its
// context's, or DefaultTimeout from now), rounded up, and the caller's clock when it
// wrote the frame (Config.Now, advanced monotonically since the connection's
// handshake), so the caller's deadline in its own clock is sent + timeout. The nodes'
// wall clocks may be far apart, so the server does not compare that with its own
// clock: it bounds the caller's clock offset from the handshake (the client's hello
// carries its clock) and from every request it receives (clock.go), and converts the
// deadline into its own clock. The conversion errs late, by at most the one-way delay
// of the fastest message seen on the connection (microseconds on a LAN; at first the
// handshake's) plus the clocks' drift since (1000 ppm assumed): a request is never
// refused while its caller may still wait for it. The other choice would refuse
// requests its caller still waits for whenever the bound is loose (a slow handshake
// would cost every request of a connection part of its time), and turn them into hints
// or local runs; a write that runs that little late carries the time its front node
// accepted it (proxy), so it cannot order after writes its client saw complete later
// anyway. The converted deadline is never later than arrival plus the time left (give
// or take a millisecond of rounding): the bound a request that was delayed on its way,
// with no faster message before it on the connection, gets.
//
// The server checks the deadline when a request is read, and again when a worker is
// about to run its handler: a request whose deadline has passed is not run and is
// answered with a late refusal, which its caller, if still waiting, gets as an error
// wrapping ErrLate (the handler certainly did not run). A caller that gets a late
// refusal before its own deadline has passed learns that the peer's bound of its clock
// is wrong (its monotonic clock stood still during a system suspend, or the clocks
// drifted apart faster than allowed), which would refuse every later request on the
// connection too: it retires the connection (no new call uses it; it closes once the
// calls on it are answered) and sends the request once more on a fresh connection,
// whose handshake gives a fresh bound. Otherwise the handler runs under a context with
// that deadline, canceled when the connection or the transport closes, and handlers
// check it again before they apply a write (coordinator/).
//
// # Server side
//
// Accepting (with a backoff after a failed accept), the set of inbound connections
// and closing them are internal/netserve's, the skeleton the RESP and memcached
// fronts share; at most 256 connections may be in their handshake at once, and one
// more is closed unanswered. Each accepted connection has a reader that starts one goroutine per request, at most
// MaxInflight at a time (then it stops reading: backpressure through TCP), and a
// writer that coalesces replies like the client's. A malformed or oversized frame
// closes the connection with a logged warning; a length prefix above MaxFrameBytes is
// refused before anything is allocated for it, and a long frame's buffer grows only as
// its bytes arrive. A panicking handler is recovered, logged, and answered with a
// RemoteError (Config.PanicPolicy netserve.Crash: the panic ends the process).
//
// # Concurrency
//
// Call, Stats and Addr are safe for concurrent use, also concurrently with Close.
// Close is idempotent: it closes the listener and every connection, cancels the
// handlers' contexts, makes blocked and later Calls return ErrClosed, and waits for
// every goroutine the transport started (so handlers must return when their context is
// done). Message types (typ) are entirely the caller's: the transport reserves none.
package transport

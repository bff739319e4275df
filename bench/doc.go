// Package bench is dynakv's load generator: it drives a server that speaks RESP
// (Redis) or the memcached text protocol with a get/set workload and measures
// throughput and latency, and it starts redis-server, memcached and dynakv itself to
// compare them side by side (Compare), with a Go baseline server that bounds what
// the network model alone allows (ServeBaseline); it starts and stops those child
// processes with internal/launch. `dynakv bench` is its command line.
//
// The generator is built to measure the server, not itself: each connection is one
// goroutine with a hand-rolled pipelined client that writes a batch of requests in
// one write and parses the replies in place from a buffered reader, without
// allocating per request. Latencies go to HdrHistograms owned by the connection's
// goroutine and are merged when the run ends; the only shared state on the hot path
// is one atomic counter of requests, claimed a batch at a time.
//
// A Generator (workload.go) is pure and deterministic for a seed: it draws the
// operation (get or set, by ratio) and the key index (uniform or zipfian over the
// keyspace). In the cache pattern (PatternCache) a connection also SETs, at the
// start of its next batch, every key whose GET missed in the last one, as a
// read-through cache is used: the only state beyond the generator is those keys,
// at most one batch of them. Every run counts its GET hits and misses (a miss is a
// null reply), so a Result has the hit ratio.
//
// Compare can give every server one memory budget (CompareConfig.MaxMemory):
// memcached -m, redis-server --maxmemory with allkeys-lru, and dynakv --maxmemory
// when its binary lists the flag in `server --help` (otherwise a note in the
// Report says its nodes ran without one); and it reads each server process's peak
// RSS (VmHWM) before stopping it.
//
// Every run is bounded: by a request count, by a duration, or both, and by its
// context. Run, Prefill, Warm and Compare may be called from any goroutine; a
// Generator and a Result are not safe for concurrent use.
package bench

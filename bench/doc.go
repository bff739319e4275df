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
// keyspace). Every run is bounded: by a request count, by a duration, or both, and
// by its context. Run, Prefill and Compare may be called from any goroutine; a
// Generator and a Result are not safe for concurrent use.
package bench

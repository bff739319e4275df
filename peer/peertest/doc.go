// Package peertest is an in-memory network for tests of the internode protocol,
// as net/http/httptest is for HTTP: Network connects named nodes, each served by a
// Server (a *peer.Mux with its components' handlers), and gives each a
// peer.Caller and a membership View. It injects faults (lost, delayed and
// duplicated messages, partitions, crashes, slow and resetting nodes, a flapping
// failure detector) and can trace every message.
//
// Its fault decisions are a hash of (seed, sender, receiver, message, current
// time), not a shared random stream: under testing/synctest the same seed gives
// the same faults whatever order goroutines send in, so a simulation replays.
// Every method is safe for concurrent use. Only tests (and test helpers) import
// it.
package peertest

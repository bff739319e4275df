package proxy

import "github.com/dynakv/dynakv/coordinator"

// QuorumError is the coordinator's error for a read or write that reached fewer
// replicas than its quorum; the front ends answer it as NOQUORUM (DESIGN.md).
type QuorumError = coordinator.QuorumError

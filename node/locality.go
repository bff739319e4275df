package node

// Where this node's internode requests go, by zone: every request it sends to a
// peer passes through one zoneCounter, which counts it by kind (a forwarded client
// op, the coordinator's replica protocol, repair) and by whether the peer is in
// this node's zone, for INFO and the metrics.

import (
	"context"
	"sync/atomic"

	"github.com/dynakv/dynakv/peer"
)

// peerKind is the class of an internode request the zone counters split by.
type peerKind uint8

const (
	// kindForward: a client op forwarded to a replica of its key (peer.MsgForward).
	kindForward peerKind = iota
	// kindReplica: the coordinator's replica protocol: replica reads and writes
	// (read repair and hint delivery included), write batches, and the keyspace
	// commands' scans, counts and flushes.
	kindReplica
	// kindRepair: anti-entropy, partition handoff and tombstone purge.
	kindRepair
	numKinds
)

// kindNames are the kinds' names: the metrics' kind label.
var kindNames = [numKinds]string{kindForward: "forward", kindReplica: "replica", kindRepair: "repair"}

// kindOf classifies a request by its message type (peer/msgtype.go lists them):
// every type not forward or of the replica protocol is repair's.
func kindOf(typ peer.MsgType) peerKind {
	switch typ {
	case peer.MsgForward:
		return kindForward
	case peer.MsgRead, peer.MsgWrite, peer.MsgWriteBatch, peer.MsgReadBatch, peer.MsgScan, peer.MsgCount, peer.MsgFlush:
		return kindReplica
	default:
		return kindRepair
	}
}

// zoneCounter is a peer.Caller that counts each request it passes on by kind and
// by whether its destination is in this node's zone (local) or not (remote). A
// node whose zone is unknown (not a ring member) counts as zone "". With no zones
// every peer is local. It counts requests sent, whatever their outcome (one write
// batch is one request), and is safe for concurrent use.
type zoneCounter struct {
	next   peer.Caller
	zone   string                   // this node's zone
	zoneOf func(node string) string // a peer's zone
	n      [numKinds][2]atomic.Int64
}

var _ peer.Caller = (*zoneCounter)(nil)

// Call implements peer.Caller.
func (c *zoneCounter) Call(ctx context.Context, node string, typ peer.MsgType, req []byte) ([]byte, error) {
	remote := 0
	if c.zoneOf(node) != c.zone {
		remote = 1
	}
	c.n[kindOf(typ)][remote].Add(1)
	return c.next.Call(ctx, node, typ, req)
}

// zoneCounts is a snapshot of a zoneCounter: requests sent, by kind, to peers
// in this node's zone and in others.
type zoneCounts struct {
	local, remote [numKinds]int64
}

func (c *zoneCounter) counts() zoneCounts {
	var s zoneCounts
	for k := range numKinds {
		s.local[k], s.remote[k] = c.n[k][0].Load(), c.n[k][1].Load()
	}
	return s
}

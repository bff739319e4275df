package repair

import (
	"context"
	"fmt"

	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/tictac"
)

// maxSegmentsPerMsg bounds the segments one MsgKeys may list; a peer asking for
// more is refused.
const maxSegmentsPerMsg = tictac.Segments

// Register registers on m the handlers of anti-entropy's messages
// (peer.MsgRoots..peer.MsgHolds), which answer other nodes' exchanges, handoffs
// and purges. They are served even when this node's own loop is not started.
func (a *AAE) Register(m *peer.Mux) {
	m.Handle(peer.MsgRoots, a.serveRoots)
	m.Handle(peer.MsgBranches, a.serveBranches)
	m.Handle(peer.MsgLeaves, a.serveLeaves)
	m.Handle(peer.MsgKeys, a.serveKeys)
	m.Handle(peer.MsgFetch, a.serveFetch)
	m.Handle(peer.MsgPush, a.servePush)
	m.Handle(peer.MsgPurge, a.servePurge)
	m.Handle(peer.MsgHolds, a.serveHolds)
}

// serveRoots answers the partitions whose roots differ from the request's.
func (a *AAE) serveRoots(_ context.Context, _ string, req []byte) ([]byte, error) {
	m, err := peer.DecodeRootsRequest(req)
	if err != nil {
		return nil, err
	}
	q := a.cfg.Trees.Partitions()
	now := a.cfg.Now().UnixMilli()
	var differ []int
	for i, p := range m.Parts {
		if p >= q {
			return nil, fmt.Errorf("%w: partition %d", peer.ErrBadMessage, p)
		}
		if root, _, _ := a.cfg.Trees.Root(p); root != m.Roots[i] {
			differ = append(differ, p)
		} else {
			a.lastSync[p].Store(now)
		}
	}
	return peer.AppendInts(nil, differ), nil
}

// serveBranches answers one partition's branch hashes.
func (a *AAE) serveBranches(_ context.Context, _ string, req []byte) ([]byte, error) {
	ps, err := peer.DecodeInts(req, a.cfg.Trees.Partitions())
	if err != nil {
		return nil, err
	}
	if len(ps) != 1 {
		return nil, fmt.Errorf("%w: want one partition", peer.ErrBadMessage)
	}
	bs := a.cfg.Trees.BranchHashes(ps[0])
	return peer.AppendHashes(nil, bs[:]), nil
}

// serveLeaves answers the leaf hashes of some branches of a partition.
func (a *AAE) serveLeaves(_ context.Context, _ string, req []byte) ([]byte, error) {
	m, err := peer.DecodePartList(req, tictac.Branches)
	if err != nil {
		return nil, err
	}
	if m.Part >= a.cfg.Trees.Partitions() {
		return nil, fmt.Errorf("%w: partition %d", peer.ErrBadMessage, m.Part)
	}
	hs := make([]uint64, 0, len(m.Items)*tictac.SegmentsPerBranch)
	for _, b := range m.Items {
		ls := a.cfg.Trees.LeafHashes(m.Part, b)
		hs = append(hs, ls[:]...)
	}
	return peer.AppendHashes(nil, hs), nil
}

// serveKeys answers the keys of some segments of a partition, each with its
// record's item hash.
func (a *AAE) serveKeys(_ context.Context, _ string, req []byte) ([]byte, error) {
	m, err := peer.DecodePartList(req, tictac.Segments)
	if err != nil {
		return nil, err
	}
	if m.Part >= a.cfg.Trees.Partitions() || len(m.Items) > maxSegmentsPerMsg {
		return nil, fmt.Errorf("%w: partition %d, %d segments", peer.ErrBadMessage, m.Part, len(m.Items))
	}
	items, err := a.segmentItems(m.Part, m.Items)
	if err != nil {
		return nil, err
	}
	return peer.AppendKeyHashes(nil, items), nil
}

// serveFetch answers the record encodings of some keys.
func (a *AAE) serveFetch(_ context.Context, _ string, req []byte) ([]byte, error) {
	keys, err := peer.DecodeKeys(req)
	if err != nil {
		return nil, err
	}
	items := make([]peer.KeyItem, len(keys))
	for i, k := range keys {
		enc, err := a.cfg.Store.GetEncoded(k)
		if err != nil {
			return nil, err
		}
		items[i] = peer.KeyItem{Key: k, Enc: enc}
	}
	return peer.AppendKeyRecords(nil, items), nil
}

// servePush merges records into this node's replicas durably.
func (a *AAE) servePush(ctx context.Context, _ string, req []byte) ([]byte, error) {
	items, err := peer.DecodeKeyRecords(req)
	if err != nil {
		return nil, err
	}
	if a.sealed() {
		return nil, ErrSealed
	}
	for _, it := range items {
		rec, err := peer.DecodeRecord(it.Enc)
		if err != nil {
			return nil, err
		}
		if _, _, err := a.merge(ctx, it.Key, rec); err != nil {
			return nil, err
		}
	}
	if err := a.cfg.Store.Sync(); err != nil {
		return nil, err
	}
	return peer.AppendEmpty(nil), nil
}

// servePurge deletes the records that are still exactly the request's.
func (a *AAE) servePurge(_ context.Context, _ string, req []byte) ([]byte, error) {
	items, err := peer.DecodeKeyRecords(req)
	if err != nil {
		return nil, err
	}
	for _, it := range items {
		deleted, err := a.cfg.Store.DeleteIf(it.Key, it.Enc)
		if err != nil {
			return nil, err
		}
		if deleted {
			a.purged.Add(1)
		}
	}
	return peer.AppendEmpty(nil), nil
}

// serveHolds answers, per key, what this node holds of it (purge.go).
func (a *AAE) serveHolds(_ context.Context, _ string, req []byte) ([]byte, error) {
	items, err := peer.DecodeKeyRecords(req)
	if err != nil {
		return nil, err
	}
	hs, err := a.holds(items)
	if err != nil {
		return nil, err
	}
	return peer.AppendHolds(nil, hs), nil
}

package repair

import (
	"context"
	"fmt"

	"github.com/dynakv/dynakv/tictac"
)

// Serve answers another node's anti-entropy message of type typ (one IsMessage
// accepts). node/ routes those types here from the cluster transport.
func (a *AAE) Serve(ctx context.Context, typ uint8, req []byte) ([]byte, error) {
	q := a.cfg.Trees.Partitions()
	switch typ {
	case MsgRoots:
		m, err := decodeRootsMsg(req)
		if err != nil {
			return nil, err
		}
		now := a.cfg.Now().UnixMilli()
		var differ []int
		for i, p := range m.Parts {
			if p >= q {
				return nil, fmt.Errorf("%w: partition %d", ErrBadMessage, p)
			}
			if root, _, _ := a.cfg.Trees.Root(p); root != m.Roots[i] {
				differ = append(differ, p)
			} else {
				a.lastSync[p].Store(now)
			}
		}
		return appendInts(nil, differ), nil
	case MsgBranches:
		ps, err := decodeInts(req, q)
		if err != nil {
			return nil, err
		}
		if len(ps) != 1 {
			return nil, fmt.Errorf("%w: want one partition", ErrBadMessage)
		}
		bs := a.cfg.Trees.BranchHashes(ps[0])
		return appendHashes(nil, bs[:]), nil
	case MsgLeaves:
		m, err := decodePartList(req, tictac.Branches)
		if err != nil {
			return nil, err
		}
		if m.Part >= q {
			return nil, fmt.Errorf("%w: partition %d", ErrBadMessage, m.Part)
		}
		hs := make([]uint64, 0, len(m.Items)*tictac.SegmentsPerBranch)
		for _, b := range m.Items {
			ls := a.cfg.Trees.LeafHashes(m.Part, b)
			hs = append(hs, ls[:]...)
		}
		return appendHashes(nil, hs), nil
	case MsgKeys:
		m, err := decodePartList(req, tictac.Segments)
		if err != nil {
			return nil, err
		}
		if m.Part >= q || len(m.Items) > maxSegmentsPerMsg {
			return nil, fmt.Errorf("%w: partition %d, %d segments", ErrBadMessage, m.Part, len(m.Items))
		}
		items, err := a.segmentItems(m.Part, m.Items)
		if err != nil {
			return nil, err
		}
		return appendKeyHashes(nil, items), nil
	case MsgFetch:
		keys, err := decodeKeys(req)
		if err != nil {
			return nil, err
		}
		items := make([]keyItem, len(keys))
		for i, k := range keys {
			enc, err := a.cfg.Store.GetEncoded(k)
			if err != nil {
				return nil, err
			}
			items[i] = keyItem{Key: k, Enc: enc}
		}
		return appendKeyRecords(nil, items), nil
	case MsgPush:
		items, err := decodeKeyRecords(req)
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			rec, err := decodeRecord(it.Enc)
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
		return []byte{aaeVersion}, nil
	case MsgPurge:
		items, err := decodeKeyRecords(req)
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
		return []byte{aaeVersion}, nil
	case MsgHolds:
		items, err := decodeKeyRecords(req)
		if err != nil {
			return nil, err
		}
		hs, err := a.holds(items)
		if err != nil {
			return nil, err
		}
		return appendHolds(nil, hs), nil
	}
	return nil, fmt.Errorf("%w: unknown type %d", ErrBadMessage, typ)
}

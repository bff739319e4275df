package repair

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/dynakv/dynakv/storage"
)

// Tombstone purge; the rule is in the package doc. The first check alone is not
// enough, because of what may be in flight when a holder answers.
//
// Why no older copy can appear on a holder between its answer and the delete: a
// copy only travels in an internode request (a replica write, read repair, hint
// delivery, an anti-entropy push) built from what its sender held, and every
// request carries a deadline past which it is not executed (the transport's rule;
// PurgeSettle and RequestTimeout bound those deadlines). A request built from an
// older copy before the first check's answers may still land on a holder that
// already answered "nothing"; it is past its deadline by the second check, so
// whatever it left there is seen by the second check, which then fails (the
// record answered differs, or a hint is there). A holder that answered "exactly"
// merges anything older into the tombstone, which supersedes it, so it cannot hold
// an older copy afterwards. Between the second check and the delete, only requests
// built after the first check's answers could carry anything, from holders that
// then held the tombstone or nothing.
//
// What the rule cannot see: a node outside the member set (removed by an
// administrator, which is final: a removed node refuses to start; or one that
// finished a leave and keeps running with hints it did not deliver), and a member
// the deciding node has not heard of yet; and a copy relayed twice within the
// settle window (a holder that got an older copy from a request in flight, sent it
// on, then took the tombstone, all between the two checks).
//
// An owner that missed MsgPurge keeps its tombstone; anti-entropy gives it back to
// the others and a later round purges it again.

// gravesPerRound bounds the tombstones examined per round.
const gravesPerRound = 1024

// purgeCheck is a tombstone that passed the first check: its record and when
// the answers were in (unix ms).
type purgeCheck struct {
	enc []byte
	at  int64
}

func (a *AAE) purge(ctx context.Context) error {
	if a.cfg.TombstoneGrace < 0 {
		return nil
	}
	rg := a.cfg.Cluster.Ring()
	start := a.cfg.Now()
	graves, err := a.cfg.Store.Graves(start.Add(-a.cfg.TombstoneGrace).UnixMilli(), gravesPerRound)
	if err != nil {
		return err
	}
	var mine []storage.Grave
	for _, g := range graves {
		owners := rg.Replicas(rg.Partition(g.Key), a.cfg.N)
		if len(owners) > 0 && owners[0] == a.cfg.Node {
			mine = append(mine, g) // the first owner decides; others hand off or wait
		}
	}
	checked := map[string]purgeCheck{}
	defer func() { a.checked = checked }()
	if len(mine) == 0 {
		return nil
	}
	holders := a.holders()
	for _, h := range holders {
		if h != a.cfg.Node && !a.cfg.Cluster.Alive(h) {
			return nil // it may hold an older copy: wait until it is back or removed
		}
	}
	settle := max(a.cfg.PurgeSettle, a.cfg.RequestTimeout).Milliseconds()
	var errs []error
	for chunk := range slices.Chunk(mine, keysPerRequest) {
		same, err := a.askHolders(ctx, holders, chunk)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		answered := a.cfg.Now().UnixMilli()
		var due []int
		for i, g := range chunk {
			if same[i] == nil {
				continue // someone holds something else: start over later
			}
			prev, ok := a.checked[string(g.Key)]
			switch {
			case ok && bytes.Equal(prev.enc, g.Record) && start.UnixMilli()-prev.at >= settle:
				due = append(due, i)
			case ok && bytes.Equal(prev.enc, g.Record):
				checked[string(g.Key)] = prev // still settling
			default:
				checked[string(g.Key)] = purgeCheck{enc: g.Record, at: answered}
			}
		}
		if err := a.purgeDue(ctx, chunk, same, due); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// holders returns the nodes a purge must ask, this one included, sorted.
func (a *AAE) holders() []string {
	var hs []string
	if a.cfg.Holders != nil {
		hs = a.cfg.Holders()
	} else {
		for _, m := range a.cfg.Cluster.Ring().Members() {
			hs = append(hs, m.Name)
		}
	}
	hs = append(slices.Clone(hs), a.cfg.Node)
	slices.Sort(hs)
	return slices.Compact(hs)
}

// askHolders asks every holder what it holds of each grave's key. same[i] lists
// the holders that hold exactly grave i's record, or is nil when some holder
// holds anything but that record or nothing. A holder that does not answer fails
// the whole batch.
func (a *AAE) askHolders(ctx context.Context, holders []string, graves []storage.Grave) (same [][]string, err error) {
	items := make([]keyItem, len(graves))
	for i, g := range graves {
		items[i] = keyItem{Key: g.Key, Enc: g.Record}
	}
	req := appendKeyRecords(nil, items)
	same = make([][]string, len(graves))
	ok := make([]bool, len(graves))
	for i := range ok {
		ok[i] = true
	}
	for _, h := range holders {
		var hs []uint8
		if h == a.cfg.Node {
			hs, err = a.holds(items)
		} else {
			var rep []byte
			if rep, err = a.call(ctx, h, MsgHolds, req); err == nil {
				hs, err = decodeHolds(rep)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("ask %s what it holds: %w", h, err)
		}
		if len(hs) != len(items) {
			return nil, fmt.Errorf("%w: %s answered for %d keys of %d", ErrBadMessage, h, len(hs), len(items))
		}
		for i, x := range hs {
			switch x {
			case holdsSame:
				same[i] = append(same[i], h)
			case holdsOther:
				ok[i] = false
			}
		}
	}
	for i := range same {
		if !ok[i] || len(same[i]) == 0 {
			same[i] = nil
		}
	}
	return same, nil
}

// holds answers MsgHolds: for each (key, record), whether this node holds
// nothing of key (no record, no hint for any owner), exactly that record (and no
// hint), or anything else.
func (a *AAE) holds(items []keyItem) ([]uint8, error) {
	owners, err := a.cfg.Store.HintOwners()
	if err != nil {
		return nil, err
	}
	out := make([]uint8, len(items))
	for i, it := range items {
		enc, err := a.cfg.Store.GetEncoded(it.Key)
		if err != nil {
			return nil, err
		}
		switch {
		case len(enc) == 0:
			out[i] = holdsNothing
		case bytes.Equal(enc, it.Enc):
			out[i] = holdsSame
		default:
			out[i] = holdsOther
			continue
		}
		for _, o := range owners {
			_, found, err := a.cfg.Store.GetHint(o, it.Key)
			if err != nil {
				return nil, err
			}
			if found {
				out[i] = holdsOther
				break
			}
		}
	}
	return out, nil
}

// purgeDue deletes the graves due[...] of graves here, then on the holders that
// hold exactly them (same).
func (a *AAE) purgeDue(ctx context.Context, graves []storage.Grave, same [][]string, due []int) error {
	perHolder := map[string][]keyItem{}
	for _, i := range due {
		g := graves[i]
		deleted, err := a.cfg.Store.DeleteIf(g.Key, g.Record)
		if err != nil {
			return err
		}
		if !deleted {
			continue // it changed meanwhile: a later round looks again
		}
		a.purged.Add(1)
		for _, h := range same[i] {
			if h != a.cfg.Node {
				perHolder[h] = append(perHolder[h], keyItem{Key: g.Key, Enc: g.Record})
			}
		}
	}
	for _, h := range slices.Sorted(maps.Keys(perHolder)) {
		// A holder that misses this keeps its tombstone; a later round purges it.
		if _, err := a.call(ctx, h, MsgPurge, appendKeyRecords(nil, perHolder[h])); err != nil {
			a.cfg.Logger.Debug("repair: purge not confirmed", "peer", h, "err", err)
		}
	}
	return nil
}

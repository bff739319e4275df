package repair

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
)

// Tombstone purge. The rule (see the package doc): a tombstone is deleted once it
// is older than TombstoneGrace and every one of its key's N owners holds exactly
// the same record (checked now, by fetching theirs); the first owner of the
// partition decides and tells the others, who delete only that exact record. An
// owner that is down, or missed the delete, blocks the purge until anti-entropy has
// given it the tombstone, so a stale replica's old value is always superseded
// before the tombstone goes. Hints are the other way an old copy could come back;
// Handoff drops hints older than the grace period for that reason.

// gravesPerRound bounds the tombstones examined per round.
const gravesPerRound = 1024

func (a *AAE) purge(ctx context.Context) error {
	if a.cfg.TombstoneGrace < 0 {
		return nil
	}
	rg := a.cfg.Cluster.Ring()
	before := a.cfg.Now().Add(-a.cfg.TombstoneGrace).UnixMilli()
	graves, err := a.cfg.Store.Graves(before, gravesPerRound)
	if err != nil {
		return err
	}
	// Group by owner set: one fetch per owner for a batch of keys.
	type batch struct {
		owners []string
		keys   [][]byte
		recs   [][]byte
	}
	batches := map[string]*batch{}
	for _, g := range graves {
		owners := rg.Replicas(rg.Partition(g.Key), a.cfg.N)
		if len(owners) == 0 || owners[0] != a.cfg.Node {
			continue // the first owner decides; a non-owner hands the record off instead
		}
		id := strings.Join(owners, "\x00")
		b := batches[id]
		if b == nil {
			b = &batch{owners: owners}
			batches[id] = b
		}
		b.keys = append(b.keys, g.Key)
		b.recs = append(b.recs, g.Record)
	}
	for _, b := range batches {
		if slices.ContainsFunc(b.owners, func(o string) bool { return o != a.cfg.Node && !a.cfg.Cluster.Alive(o) }) {
			continue
		}
		for i := 0; i < len(b.keys); i += keysPerRequest {
			j := min(i+keysPerRequest, len(b.keys))
			if err := a.purgeBatch(ctx, b.owners, b.keys[i:j], b.recs[i:j]); err != nil {
				return err
			}
		}
	}
	return nil
}

// purgeBatch purges the tombstones (keys, recs) that every other owner holds
// exactly, here first and then on the others.
func (a *AAE) purgeBatch(ctx context.Context, owners []string, keys, recs [][]byte) error {
	confirmed := make([]bool, len(keys))
	for i := range confirmed {
		confirmed[i] = true
	}
	for _, o := range owners {
		if o == a.cfg.Node {
			continue
		}
		rep, err := a.call(ctx, o, MsgFetch, appendKeys(nil, keys))
		if err != nil {
			return fmt.Errorf("fetch from %s: %w", o, err)
		}
		theirs, err := decodeKeyRecords(rep)
		if err != nil {
			return err
		}
		if len(theirs) != len(keys) {
			return fmt.Errorf("%w: %d records for %d keys", ErrBadMessage, len(theirs), len(keys))
		}
		for i := range keys {
			if !bytes.Equal(theirs[i].Key, keys[i]) || !bytes.Equal(theirs[i].Enc, recs[i]) {
				confirmed[i] = false
			}
		}
	}
	var gone []keyItem
	for i, ok := range confirmed {
		if !ok {
			continue
		}
		deleted, err := a.cfg.Store.DeleteIf(keys[i], recs[i])
		if err != nil {
			return err
		}
		if deleted {
			a.purged.Add(1)
			gone = append(gone, keyItem{Key: keys[i], Enc: recs[i]})
		}
	}
	if len(gone) == 0 {
		return nil
	}
	msg := appendKeyRecords(nil, gone)
	for _, o := range owners {
		if o == a.cfg.Node {
			continue
		}
		// A peer that misses this keeps its tombstone; anti-entropy gives it back to
		// us and a later round purges it again.
		if _, err := a.call(ctx, o, MsgPurge, msg); err != nil {
			a.cfg.Logger.Debug("repair: purge not confirmed", "peer", o, "err", err)
		}
	}
	return nil
}

package repair

import (
	"bytes"
	"context"
	"fmt"
	"iter"
	"maps"
	"slices"
	"time"

	"github.com/dynakv/dynakv/peer"
)

// Tombstone purge; the rule is in the package doc. The first check alone is not
// enough, because of what may be in flight when a holder answers.
//
// Why no older copy can appear on a holder between its answer and the delete: a
// copy only travels in an internode request (a replica write, read repair, hint
// delivery, an anti-entropy or handoff push) built from what its sender read, or
// is kept as a hint for one, and every path bounds how long after the read that
// can happen:
//
//   - coordinator writes, their fallbacks and the replica writes past the quorum,
//     and read repairs: under their request's deadline, fixed when the request
//     began (before it read anything): the caller's, or RequestTimeout later,
//     ending up to RequestTimeout/64 after that when the context is shared
//     (coordinator's sharedDeadline); a read-modify-write's read and writes share
//     it, and a read's repairs run within the read's. A hint of the request's
//     record is stored only before RequestTimeout/32 past the deadline (a call
//     that timed out then has RequestTimeout/64 to keep its hint). Bound:
//     RequestTimeout + RequestTimeout/32 of the coordinator.
//   - anti-entropy and handoff: a batch's fetch, its merge here and its push back
//     share one AAEConfig.RequestTimeout from before the fetch, and neither side
//     merges a pushed or fetched record once it has passed (checked under the
//     key's lock). Bound: RequestTimeout.
//   - hint delivery: the hint is read again right before it is sent and sent
//     under the handoff's RequestTimeout from then; a hint is itself "something
//     else" until its delivery was acknowledged. Bound: that RequestTimeout.
//
// The receiver never applies a request past its deadline (the transport refuses
// it, converted into its own clock with a bound on the caller's offset, and the
// handlers check again). The purge's two checks are at least
// settle = max(PurgeSettle, RequestTimeout) apart, measured from when every
// first answer was in to before the second check is sent: node/ passes its
// request timeout plus RequestTimeout/32 as PurgeSettle (the coordinator's and
// the handoff's bound) and RequestTimeout is anti-entropy's own. So a
// request built from an older copy before the first check's answers may still
// land on a holder that already answered "nothing", but it does so before the
// second check, which then sees it and fails (the record answered differs, or a
// hint is there). A holder that answered "exactly" merges anything older into
// the tombstone, which supersedes it, so it cannot hold an older copy
// afterwards. Between the second check and the delete, only requests built after
// the first check's answers could carry anything, from holders that then held the
// tombstone or nothing.
//
// The bound leaves out the time a write that passed its deadline check takes to
// become visible: its key-lock wait and commit for a replica write or a hinted
// one on the receiver (the coordinator's write handler checks the deadline before
// it takes the lock), only the commit for the others (checked under the lock). The
// settle has no margin of its own for that; with the defaults (request timeout
// 1s, anti-entropy's 10s) the coordinator's paths have almost 9 s to spare,
// anti-entropy's a NoSync commit's time.
//
// What the rule cannot see: a node outside the member set (removed by an
// administrator, which is final: a removed node refuses to start; or one that
// finished a leave, which holds no partition and no hint then (node/ finishes a
// leave only so) but may still take a write from a peer that has not heard of the
// leave, so it should be stopped), and a member
// the deciding node has not heard of yet; and a copy relayed twice within the
// settle window (a holder that got an older copy from a request in flight, sent it
// on, then took the tombstone, all between the two checks).
//
// An owner that missed MsgPurge keeps its tombstone; anti-entropy gives it back to
// the others and a later round purges it again.

// A round's purge walks the grave index with a cursor (storage.GravesFrom), past
// the graves of partitions this node does not decide, so they never fill its
// pages. It first-checks the graves it decides in batches of purgeBatch keys, one
// MsgHolds per holder per batch, and second-checks each batch in the same round
// as soon as the settle time has passed since its first check's answers were in,
// sleeping for it (AAEConfig.Sleep) when nothing else is left to do; the second
// checks that pass are deleted here and on the holders that hold exactly them,
// one MsgPurge per holder per batch. It stops when the walk is done and nothing
// checked is left, or once the round's purge has run for Interval: first checks
// whose second is not due by then wait for the next round (kept with the holders
// they were asked of; if those changed, they start over). A holder that does not
// answer ends the round's purge. Each key checked, by
// either check, takes one key of the anti-entropy throughput budget
// (MaxKeysPerSec): a check reads the key on every holder, like a key listed in an
// exchange, and sharing the budget keeps one operator knob on the background
// load anti-entropy puts on the nodes. The purges of a round come after its
// exchanges and handoffs, so those are never starved.
const (
	// purgeBatch bounds the keys of one MsgHolds or MsgPurge (the decoders
	// refuse more than peer.MaxKeysPerMsg) and of one page of the grave walk.
	purgeBatch = peer.MaxKeysPerMsg
	// purgeBatchBytes bounds the key and record bytes of one of those messages.
	purgeBatchBytes = 1 << 20
	// purgePending bounds the first checks waiting for their second, so the
	// memory a round holds is bounded whatever the backlog.
	purgePending = 1 << 16
)

// purgeCheck is a tombstone that passed the first check: its key, its record
// and when the answers were in.
type purgeCheck struct {
	key, enc []byte
	at       time.Time
}

// purgeState is what one round's purge leaves for the next: the first checks not
// second-checked yet, oldest first, and the holders that answered them.
type purgeState struct {
	holders []string
	pending []purgeCheck
}

// Settle is the least time between a tombstone's two purge checks:
// max(PurgeSettle, RequestTimeout).
func (a *AAE) Settle() time.Duration { return max(a.cfg.PurgeSettle, a.cfg.RequestTimeout) }

func (a *AAE) purge(ctx context.Context) error {
	carried := a.checked
	a.checked = purgeState{}
	grace := a.cfg.TombstoneGrace
	if grace < 0 {
		return nil
	}
	holders, ok := a.liveHolders()
	if !ok {
		return nil // one may hold an older copy: wait until it is back or removed
	}
	rg := a.cfg.Cluster.Ring()
	mine := func(p int) bool {
		owners := rg.Replicas(p, a.cfg.N)
		return len(owners) > 0 && owners[0] == a.cfg.Node // the first owner decides; others hand off or wait
	}
	var pending []purgeCheck
	if slices.Equal(carried.holders, holders) {
		for _, pc := range carried.pending {
			if mine(rg.Partition(pc.key)) {
				pending = append(pending, pc)
			}
		}
	}
	queued := make(map[string]bool, len(pending))
	for _, pc := range pending {
		queued[string(pc.key)] = true
	}
	defer func() { a.checked = purgeState{holders: holders, pending: pending} }()
	settle := a.Settle()
	start := a.cfg.Now()
	end := start.Add(a.cfg.Interval)
	before := start.Add(-grace).UnixMilli()
	var cursor []byte
	walked := false
	for ctx.Err() == nil {
		now := a.cfg.Now()
		// Second checks first: they are what frees space.
		n := 0
		for n < len(pending) && n < purgeBatch && now.Sub(pending[n].at) >= settle {
			n++
		}
		if n > 0 {
			if hs, ok := a.liveHolders(); !ok || !slices.Equal(hs, holders) {
				pending = nil // who must answer changed: first checks start over
				return nil
			}
			batch := pending[:n]
			if err := a.secondCheck(ctx, holders, batch); err != nil {
				return err
			}
			pending = pending[n:]
			for _, pc := range batch {
				delete(queued, string(pc.key))
			}
			continue
		}
		if !walked && len(pending) < purgePending && now.Before(end) {
			graves, next, err := a.cfg.Store.GravesFrom(cursor, before, min(purgeBatch, purgePending-len(pending)), mine)
			if err != nil {
				return err
			}
			cursor, walked = next, next == nil
			items := make([]peer.KeyItem, 0, len(graves))
			for _, g := range graves {
				if !queued[string(g.Key)] {
					items = append(items, peer.KeyItem{Key: g.Key, Enc: g.Record})
				}
			}
			passed, err := a.firstCheck(ctx, holders, items)
			if err != nil {
				return err
			}
			for _, pc := range passed {
				queued[string(pc.key)] = true
			}
			pending = append(pending, passed...)
			continue
		}
		if len(pending) == 0 {
			return nil
		}
		due := pending[0].at.Add(settle)
		if due.After(end) {
			return nil // the next round second-checks them
		}
		if err := a.cfg.Sleep(ctx, due.Sub(now)); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// liveHolders returns the holders (see holders) and whether every other one is
// alive.
func (a *AAE) liveHolders() ([]string, bool) {
	holders := a.holders()
	for _, h := range holders {
		if h != a.cfg.Node && !a.cfg.Cluster.Alive(h) {
			return nil, false
		}
	}
	return holders, true
}

// firstCheck asks every holder about items and returns those every holder
// answered "nothing" or "exactly" for, stamped with when the answers were in.
func (a *AAE) firstCheck(ctx context.Context, holders []string, items []peer.KeyItem) ([]purgeCheck, error) {
	var passed []purgeCheck
	for chunk := range purgeChunks(items) {
		if err := a.take(ctx, len(chunk)); err != nil {
			return passed, err
		}
		same, err := a.askHolders(ctx, holders, chunk)
		if err != nil {
			return passed, err
		}
		at := a.cfg.Now()
		for i, it := range chunk {
			if same[i] != nil {
				passed = append(passed, purgeCheck{key: it.Key, enc: it.Enc, at: at})
			}
		}
	}
	return passed, nil
}

// secondCheck asks every holder again about checks, whose first checks are at
// least the settle time old, and purges those that pass again.
func (a *AAE) secondCheck(ctx context.Context, holders []string, checks []purgeCheck) error {
	items := make([]peer.KeyItem, len(checks))
	for i, pc := range checks {
		items[i] = peer.KeyItem{Key: pc.key, Enc: pc.enc}
	}
	for chunk := range purgeChunks(items) {
		if err := a.take(ctx, len(chunk)); err != nil {
			return err
		}
		same, err := a.askHolders(ctx, holders, chunk)
		if err != nil {
			return err
		}
		if err := a.purgeDue(ctx, chunk, same); err != nil {
			return err
		}
	}
	return nil
}

// purgeChunks splits items into the batches of one MsgHolds or MsgPurge: at
// most purgeBatch keys and, unless a single item is larger, purgeBatchBytes.
func purgeChunks(items []peer.KeyItem) iter.Seq[[]peer.KeyItem] {
	return func(yield func([]peer.KeyItem) bool) {
		for len(items) > 0 {
			n, size := 0, 0
			for n < len(items) && n < purgeBatch {
				size += len(items[n].Key) + len(items[n].Enc)
				if n > 0 && size > purgeBatchBytes {
					break
				}
				n++
			}
			if !yield(items[:n]) {
				return
			}
			items = items[n:]
		}
	}
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

// askHolders asks every holder what it holds of each item's key. same[i] lists
// the holders that hold exactly item i's record, or is nil when some holder
// holds anything but that record or nothing. A holder that does not answer fails
// the whole batch.
func (a *AAE) askHolders(ctx context.Context, holders []string, items []peer.KeyItem) (same [][]string, err error) {
	req := peer.AppendKeyRecords(nil, items)
	same = make([][]string, len(items))
	ok := make([]bool, len(items))
	for i := range ok {
		ok[i] = true
	}
	for _, h := range holders {
		var hs []peer.Holds
		if h == a.cfg.Node {
			hs, err = a.holds(items)
		} else {
			var rep []byte
			if rep, err = a.call(ctx, h, peer.MsgHolds, req); err == nil {
				hs, err = peer.DecodeHolds(rep)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("ask %s what it holds: %w", h, err)
		}
		if len(hs) != len(items) {
			return nil, fmt.Errorf("%w: %s answered for %d keys of %d", peer.ErrBadMessage, h, len(hs), len(items))
		}
		for i, x := range hs {
			switch x {
			case peer.HoldsSame:
				same[i] = append(same[i], h)
			case peer.HoldsOther:
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
func (a *AAE) holds(items []peer.KeyItem) ([]peer.Holds, error) {
	owners, err := a.cfg.Store.HintOwners()
	if err != nil {
		return nil, err
	}
	out := make([]peer.Holds, len(items))
	for i, it := range items {
		enc, err := a.cfg.Store.GetEncoded(it.Key)
		if err != nil {
			return nil, err
		}
		switch {
		case len(enc) == 0:
			out[i] = peer.HoldsNothing
		case bytes.Equal(enc, it.Enc):
			out[i] = peer.HoldsSame
		default:
			out[i] = peer.HoldsOther
			continue
		}
		for _, o := range owners {
			_, found, err := a.cfg.Store.GetHint(o, it.Key)
			if err != nil {
				return nil, err
			}
			if found {
				out[i] = peer.HoldsOther
				break
			}
		}
	}
	return out, nil
}

// purgeDue deletes the items whose second check passed (same[i] not nil) here,
// then on the holders that hold exactly them, one MsgPurge per holder.
func (a *AAE) purgeDue(ctx context.Context, items []peer.KeyItem, same [][]string) error {
	perHolder := map[string][]peer.KeyItem{}
	for i, it := range items {
		if same[i] == nil {
			continue // someone holds something else now: a later round starts over
		}
		deleted, err := a.cfg.Store.DeleteIf(it.Key, it.Enc)
		if err != nil {
			return err
		}
		if !deleted {
			continue // it changed meanwhile: a later round looks again
		}
		a.purged.Add(1)
		for _, h := range same[i] {
			if h != a.cfg.Node {
				perHolder[h] = append(perHolder[h], it)
			}
		}
	}
	for _, h := range slices.Sorted(maps.Keys(perHolder)) {
		// A holder that misses this keeps its tombstone; a later round purges it.
		if _, err := a.call(ctx, h, peer.MsgPurge, peer.AppendKeyRecords(nil, perHolder[h])); err != nil {
			a.cfg.Logger.Debug("repair: purge not confirmed", "peer", h, "err", err)
		}
	}
	return nil
}

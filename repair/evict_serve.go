package repair

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/dynakv/dynakv/evict"
	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/storage"
)

// The replicas' confirmation of a batch (design section 3): a replica may see
// few of a key's reads (R of N owners answer a quorum read; with forwarding
// some see almost none), so before evicting a batch the evictor asks the other
// live owners of each candidate for their access words (peer.MsgAccess), keeps
// the freshest (newest LRU stamp, largest decayed LFU counter), learns it into
// its own table, and evicts only the candidates still scoring at least the
// pool's median; the others go back to the pool. The owners are asked at once,
// and one that does not answer within accessTimeout (a suspect peer still
// counts as alive) is skipped: it delays a batch by that much at most.

// accessTimeout bounds the wait for an owner's access words (RequestTimeout if
// shorter): the words only refine the pick, and a batch waits for them.
const accessTimeout = 250 * time.Millisecond

// Register puts the MsgAccess handler on m.
func (e *Evictor) Register(m *peer.Mux) { m.Handle(peer.MsgAccess, e.serveAccess) }

// accessKind is the wire kind of a table's words.
func accessKind(k evict.Kind) uint8 {
	switch k {
	case evict.KindLRU:
		return peer.AccessLRU
	case evict.KindLFU:
		return peer.AccessLFU
	}
	return 0
}

// serveAccess answers this node's words of the requested hashes: 0 (unknown)
// for all when its table keeps another kind or none.
func (e *Evictor) serveAccess(_ context.Context, _ string, req []byte) ([]byte, error) {
	m, err := peer.DecodeAccessRequest(req)
	if err != nil {
		return nil, err
	}
	ws := make([]uint32, len(m.Hashes))
	if t := e.cfg.Store.Access(); t != nil && accessKind(t.Kind()) == m.Kind {
		for i, h := range m.Hashes {
			if w, ok := t.Lookup(h); ok {
				ws[i] = w
			}
		}
	}
	return peer.AppendAccessWords(nil, ws), nil
}

// confirm returns the candidates of batch to evict now (see above); without a
// caller, a cluster, or access words (random and ttl policies), all of them.
func (e *Evictor) confirm(ctx context.Context, p evict.Policy, batch []storage.Candidate, now int64) []storage.Candidate {
	t := e.table
	if e.cfg.Caller == nil || e.cfg.Cluster == nil || t == nil || p.Kind() != t.Kind() {
		return batch
	}
	rg := e.cfg.Cluster.Ring()
	if rg == nil {
		return batch
	}
	asks := map[string][]int{} // owner -> indexes into batch
	for i, c := range batch {
		for _, o := range rg.Replicas(c.P, e.cfg.N) {
			if o != e.cfg.Node && e.cfg.Cluster.Alive(o) {
				asks[o] = append(asks[o], i)
			}
		}
	}
	if len(asks) == 0 {
		return batch
	}
	learnt := make([]uint32, len(batch))
	owners := make([]string, 0, len(asks))
	for o := range asks {
		owners = append(owners, o)
	}
	slices.Sort(owners)
	replies := make([][]uint32, len(owners))
	var wg sync.WaitGroup
	cctx, cancel := context.WithTimeout(ctx, min(e.cfg.RequestTimeout, accessTimeout))
	defer cancel()
	for k, o := range owners {
		idx := asks[o]
		req := peer.AccessRequest{Kind: accessKind(t.Kind()), Hashes: make([]uint64, len(idx))}
		for j, i := range idx {
			req.Hashes[j] = batch[i].H
		}
		wg.Go(func() {
			rep, err := e.cfg.Caller.Call(cctx, o, peer.MsgAccess, req.AppendBinary(nil))
			if err != nil {
				e.cfg.Logger.Debug("repair: evictor: access words", "node", o, "err", err)
				return
			}
			ws, err := peer.DecodeAccessWords(rep)
			if err != nil || len(ws) != len(idx) {
				e.cfg.Logger.Debug("repair: evictor: access words", "node", o, "err", err, "words", len(ws))
				return
			}
			replies[k] = ws
		})
	}
	wg.Wait()
	_, decay := t.LFU()
	mins := evict.LFUMinutes(now)
	for k, o := range owners {
		ws := replies[k]
		if ws == nil {
			continue
		}
		for j, i := range asks[o] {
			w, cur := ws[j], learnt[i]
			switch {
			case w == 0:
			case cur == 0:
				learnt[i] = w
			case t.Kind() == evict.KindLRU && lruNewer(w, cur):
				learnt[i] = w
			case t.Kind() == evict.KindLFU && evict.LFUDecrAndReturn(w, mins, decay) > evict.LFUDecrAndReturn(cur, mins, decay):
				learnt[i] = w
			}
		}
	}
	bar := e.pool.Median()
	out := batch[:0:0]
	for i, c := range batch {
		if learnt[i] != 0 {
			t.Learn(c.H, learnt[i], now)
		}
		score := e.score(p, c, now)
		if e.pool.Len() == 0 || score >= bar {
			out = append(out, c)
		} else {
			e.pool.Offer(c.Key, score, c)
		}
	}
	return out
}

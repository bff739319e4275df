package coordinator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/storage"
)

// The non-blocking requests (issue 19): ModifyIn and GetIn serve a request on an
// event loop, staging writes in the loop's storage.WriteSet, which the loop
// commits once per iteration. They never wait: a request that would (a quorum
// request, the seal's lock taken, the key's lock stripe busy, the set full)
// returns an error wrapping ErrWouldBlock before any side effect (nothing read
// into the set, no fresh counter taken, no lock kept), for the caller to run it
// with Modify or Get where waiting is fine. They serve a single node
// (Config.Cluster nil) and, in a cluster, a key whose plan is this node alone
// (soleReplica: N is 1, or the ring has one member, and this node holds the
// key): a quorum of one, which Modify and Get would also serve locally, with no
// read first, no replica call and no hint. Any other key of a cluster would block
// (ModifyBatch and GetBatch batch those).

// ErrWouldBlock is returned by ModifyIn and GetIn when they cannot go on without
// waiting; nothing was done. It wraps storage.ErrWouldBlock, and the errors
// returned with it wrap the reason (storage.ErrLockBusy, storage.ErrSetFull, or
// one of the coordinator's).
var ErrWouldBlock = fmt.Errorf("coordinator: %w", storage.ErrWouldBlock)

// ErrQuorum is the reason ModifyIn and GetIn give (wrapped with ErrWouldBlock)
// for a key another node holds too: a quorum request waits for other nodes.
var ErrQuorum = errors.New("a quorum request waits for other nodes")

// The coordinator's own reasons to block.
var (
	errSealBusy  = errors.New("the seal's lock is taken")
	errQuorum    = ErrQuorum
	errOtherSets = errors.New("coordinator: the write set belongs to another store")
)

// wouldBlock is ErrWouldBlock for a reason: it is ErrWouldBlock (and so
// storage's) and unwraps to the reason.
type wouldBlock struct{ reason error }

func (e wouldBlock) Error() string   { return ErrWouldBlock.Error() + ": " + e.reason.Error() }
func (e wouldBlock) Is(t error) bool { return t == ErrWouldBlock || t == storage.ErrWouldBlock }
func (e wouldBlock) Unwrap() error   { return e.reason }

// blocked returns err as a wouldBlock when it is storage's ErrWouldBlock.
func blocked(err error) error {
	if errors.Is(err, storage.ErrWouldBlock) {
		return wouldBlock{err}
	}
	return err
}

// NewWriteSet returns a write set of this coordinator's store for ModifyIn and
// GetIn, or nil when the store is not a *storage.Store.
func (c *Coordinator) NewWriteSet() *storage.WriteSet {
	st, ok := c.store.(*storage.Store)
	if !ok {
		return nil
	}
	return st.NewWriteSet()
}

// SoleReplica reports whether a request for key involves this node alone (no
// cluster, or N=1 or a one-member ring with key on this node): its reads and
// writes are local, and ModifyIn and GetIn serve them.
func (c *Coordinator) SoleReplica(key []byte) bool { return c.soleReplica(key, false) }

// soleReplica reports whether a request for key involves this node alone: no
// cluster, or a plan (planHints, with noHints for a write that keeps none) of one
// replica, this node, with no remote target and no orphan to keep a hint for.
// Modify and Get serve such a key locally too (quorumModify reads first only for
// N > 1, and replicate has nothing to send); so may ModifyIn and GetIn.
func (c *Coordinator) soleReplica(key []byte, noHints bool) bool {
	if c.cfg.Cluster == nil {
		return true
	}
	pn := c.planHints(key, noHints)
	return pn.n == 1 && pn.self && len(pn.remote) == 0 && len(pn.orphans) == 0
}

// ModifyIn is Modify on a single node staged in ws, a write set of this
// coordinator's store: the same checks (ErrLate, ErrSealed), the same record
// (fn run on the record as ws leaves the key, under the key's lock, which ws
// then keeps; the same dot, epoch and pruning), and the same result, except
// that nothing is durable yet (Durable is false): the write is applied by
// ws.Commit, and may be acknowledged once ws.Commit(sync) returned nil, with
// sync set for a DurableOnReturn write (which then also covers, as Modify's
// settle does, a write that wrote nothing: what it read may be another
// writer's Deferred write). A failed Commit fails it. ws keeps this node's
// admission of local writes until it ends, so Seal waits for ws's writes to
// be applied, as it waits for Modify's.
//
// It never waits: it returns an error wrapping ErrWouldBlock, having done
// nothing, when another node takes part (a quorum write: soleReplica), when the seal's lock is
// taken (Seal is sealing), and when ws.Update would block (the key's lock
// stripe is busy, ws is full). The deadline is checked when fn is about to run,
// as Modify does, so a write the client stopped waiting for is never staged; a
// staged write is applied at the end of the caller's iteration.
func (c *Coordinator) ModifyIn(ctx context.Context, ws *storage.WriteSet, key []byte, fn ModifyFunc, opt WriteOptions) (WriteResult, error) {
	if err := late(ctx, time.Time{}); err != nil {
		return WriteResult{}, err
	}
	if !c.soleReplica(key, opt.NoHints) {
		return WriteResult{}, wouldBlock{errQuorum}
	}
	if st, ok := c.store.(*storage.Store); !ok || ws.Store() != st {
		return WriteResult{}, errOtherSets
	}
	admitted := ws.Holding(c)
	var release func()
	if !admitted {
		var err error
		if release, err = c.tryAdmitWrite(); err != nil {
			if errors.Is(err, errSealBusy) {
				return WriteResult{}, wouldBlock{err}
			}
			return WriteResult{}, err
		}
	}
	wrote := false
	if !admitted {
		// A panic in fn (a bug, which a front recovers to close only that
		// connection) staged nothing: the admission goes, or a later Seal would
		// wait for it forever, and with it every write of the node.
		defer func() {
			if release != nil {
				release()
			}
		}()
	}
	rec, err := ws.Update(key, c.localWrite(c.partition(key), record.Record{}, c.beforeDeadline(ctx, fn, 0), &wrote))
	if !admitted && !errors.Is(err, storage.ErrWouldBlock) {
		// Kept until ws ends only if ws may now hold something of this
		// coordinator's to apply; a write that would block leaves no trace
		// (the deferred release).
		ws.Hold(c, release)
		release = nil
	}
	if err != nil {
		return WriteResult{}, blocked(err)
	}
	return WriteResult{Record: rec}, nil
}

// GetIn is Get on a single node (or a Local read) that never waits and sees
// ws's writes: the record as ws leaves key (storage.WriteSet.Get), including
// writes staged but not yet committed, which the caller must not answer with
// before ws.Commit returned nil. A quorum read (a key of a cluster whose plan is
// not this node alone, soleReplica, unless opt.Local) returns an error wrapping
// ErrWouldBlock.
func (c *Coordinator) GetIn(ctx context.Context, ws *storage.WriteSet, key []byte, opt ReadOptions) (record.Record, error) {
	if err := ctx.Err(); err != nil {
		return record.Record{}, err
	}
	if !opt.Local && !c.soleReplica(key, false) {
		return record.Record{}, wouldBlock{errQuorum}
	}
	if st, ok := c.store.(*storage.Store); !ok || ws.Store() != st {
		return record.Record{}, errOtherSets
	}
	rec, _, err := ws.Get(key)
	return rec, err
}

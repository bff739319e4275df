package proxy

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/dynakv/dynakv/coordinator"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/storage"
)

// Try mode (issue 19, S8): an event loop runs an op with Session.Try, which
// never waits. The op's writes are staged in the loop's WriteSet, which the
// loop commits once per iteration (with the sync) before any reply of the
// iteration leaves; an op that cannot complete without waiting returns an
// error wrapping ErrWouldBlock having done nothing visible (no storage
// change, no counter moved, no lock kept), and the front end runs it again,
// from the start, with Do on a goroutine where waiting is fine.

// ErrWouldBlock is returned by Session.Try when the op cannot complete without
// waiting; nothing was done. Errors wrapping it are *WouldBlock, whose Reason
// says why (BlockReason).
var ErrWouldBlock = errors.New("proxy: would block")

// Reasons an op would block (WouldBlock.Reason).
const (
	ReasonForward  = "forward"   // the router names another node
	ReasonQuorum   = "quorum"    // a cluster: the op waits for other nodes
	ReasonOOMWait  = "oom-wait"  // over maxmemory with an evicting policy: Admit may wait
	ReasonLockBusy = "lock-busy" // a key's lock stripe or the seal's lock is taken
	ReasonSetFull  = "set-full"  // the WriteSet is at its bound
	ReasonFlush    = "flush"     // a delayed flush_all is due
	ReasonSteps    = "steps"     // an op of several writes (Vivify, ma with T) or a DGET/DPUT/DDEL
)

// WouldBlock is the error Try returns when the op would wait.
type WouldBlock struct{ Reason string }

func (e *WouldBlock) Error() string   { return "proxy: would block: " + e.Reason }
func (e *WouldBlock) Is(t error) bool { return t == ErrWouldBlock }

// One value per reason, so that Try allocates nothing to say it.
var blockErrs = map[string]*WouldBlock{}

var reasons = []string{ReasonForward, ReasonQuorum, ReasonOOMWait, ReasonLockBusy, ReasonSetFull, ReasonFlush, ReasonSteps}

func init() {
	for _, r := range reasons {
		blockErrs[r] = &WouldBlock{r}
	}
}

// Reasons returns every reason an op would block, in a fixed order (the
// fronts count their handoffs by reason).
func Reasons() []string { return slices.Clone(reasons) }

// RerunSafe says what keeps a handler that ran ops (in order) in try mode from
// being run again from the start after a would-block of any of them: a write
// after another op (the re-run would repeat it, or a later op's would-block
// would leave it done). It returns "" when the ops are reads, or one write
// first: the rule for the fronts' inline commands.
func RerunSafe(ops []Op) string {
	for i, op := range ops {
		if i > 0 && op.Writes() {
			return "a write after another op"
		}
		if i > 0 && ops[0].Writes() {
			return "an op after a write"
		}
	}
	return ""
}

func wouldBlock(reason string) error { return blockErrs[reason] }

// BlockReason returns the reason of an error wrapping ErrWouldBlock, or "".
func BlockReason(err error) string {
	if wb, ok := errors.AsType[*WouldBlock](err); ok {
		return wb.Reason
	}
	return ""
}

// MemoryChecker is a Memory that can tell without waiting whether a growing op
// may run: Check returns ok when Admit would return nil at once, an error
// wrapping ErrOOM when Admit would refuse at once (noeviction), and neither
// when Admit may wait (an evicting policy over the limit). A Memory without it
// makes every growing op block in try mode; NoLimit has it.
type MemoryChecker interface {
	Check() (ok bool, err error)
}

// Check implements MemoryChecker: always ok.
func (NoLimit) Check() (bool, error) { return true, nil }

// loopCoordinator is what try mode needs of the coordinator:
// *coordinator.Coordinator implements it.
type loopCoordinator interface {
	NewWriteSet() *storage.WriteSet
	ModifyIn(ctx context.Context, ws *storage.WriteSet, key []byte, fn coordinator.ModifyFunc, opt coordinator.WriteOptions) (coordinator.WriteResult, error)
	GetIn(ctx context.Context, ws *storage.WriteSet, key []byte, opt coordinator.ReadOptions) (record.Record, error)
}

var _ loopCoordinator = (*coordinator.Coordinator)(nil)

// WriteSet is an event loop's storage.WriteSet: the writes of Try, staged
// until Commit. It is used by one goroutine (its loop's).
type WriteSet struct {
	p  *Proxy
	co loopCoordinator
	ws *storage.WriteSet
}

// NewWriteSet returns a write set for Try, or nil when every op would block in
// try mode (a coordinator without write sets): the front end
// then hands every op off.
func (p *Proxy) NewWriteSet() *WriteSet {
	co, ok := p.co.(loopCoordinator)
	if !ok {
		return nil
	}
	ws := co.NewWriteSet()
	if ws == nil {
		return nil
	}
	return &WriteSet{p: p, co: co, ws: ws}
}

// LoopWriteSet is NewWriteSet for an event loop's commit point
// (internal/loopcommit): ok is false when there is no write set.
func (p *Proxy) LoopWriteSet() (ws *WriteSet, ok bool) {
	ws = p.NewWriteSet()
	return ws, ws != nil
}

// Len returns the number of writes staged since the set began (Tries that
// staged a write, or decided not to write on what they read).
func (w *WriteSet) Len() int { return w.ws.Len() }

// Commit applies and syncs what the set staged (one Pebble commit, a group
// commit with the node's other synced writers; the sync is the store's:
// none with --fsync none, the WAL's periodic one with interval). When it
// returns nil every staged write is durable as Do's would be; an error fails
// every one of them: no reply may acknowledge them, nor any read of a key the
// set held (Session.TakeStaged). The set is empty afterwards either way.
func (w *WriteSet) Commit() error {
	if err := w.ws.Commit(true); err != nil {
		return fmt.Errorf("proxy: commit: %w", err)
	}
	return nil
}

// Discard ends the set without applying anything it staged.
func (w *WriteSet) Discard() { w.ws.Discard() }

// Try runs op as Do would on this node, staged in ws, without ever waiting: it
// returns an error wrapping ErrWouldBlock (a *WouldBlock), having done nothing,
// when op would be forwarded, needs a quorum (another node holds its key too,
// or ws is nil), finds a delayed flush_all due, grows memory over the limit
// under an evicting policy (Config.Memory's Check; under noeviction it fails
// with ErrOOM as Do does), is an op of several writes, finds a lock busy, or
// finds ws full. Its outcome
// may be acknowledged only once ws.Commit returned nil; TakeStaged reports
// whether it depends on the commit.
func (s *Session) Try(ctx context.Context, op Op, ws *WriteSet) (Result, error) {
	p := s.p
	if ws == nil {
		return Result{}, wouldBlock(ReasonQuorum)
	}
	if r := p.cfg.Router; r != nil && routed(op) && r.Route(op.Key) != "" {
		return Result{}, wouldBlock(ReasonForward)
	}
	if at := p.pendingFlush.Load(); at != 0 && p.now() >= at {
		return Result{}, wouldBlock(ReasonFlush)
	}
	if op.Vivify || op.Kind == OpIncrUnsigned && op.SetExpiry || op.Kind == OpDGet || op.Kind == OpDPut || op.Kind == OpDDel {
		return Result{}, wouldBlock(ReasonSteps)
	}
	if grows(op) {
		mc, ok := p.cfg.Memory.(MemoryChecker)
		if !ok {
			return Result{}, wouldBlock(ReasonOOMWait)
		}
		admit, err := mc.Check()
		if err != nil {
			return Result{}, err
		}
		if !admit {
			return Result{}, wouldBlock(ReasonOOMWait)
		}
	}
	p.accept(&op) // op is Try's copy: a re-run takes its own time
	if op.Kind == OpGet {
		rec, err := ws.co.GetIn(ctx, ws.ws, op.Key, coordinator.ReadOptions{R: op.R})
		if err != nil {
			return Result{}, tryErr(err)
		}
		if ws.ws.Has(op.Key) {
			s.staged = true
		}
		return p.read(op, rec), nil
	}
	if applierOf(op.Kind) == nil {
		return Result{}, fmt.Errorf("%w: %d", ErrUnknownOp, op.Kind)
	}
	var res Result
	w, err := ws.co.ModifyIn(ctx, ws.ws, op.Key, p.modifyFunc(op, &res), p.writeOptions(op, coordinator.DurableOnReturn))
	if err != nil {
		if errors.Is(err, coordinator.ErrWouldBlock) {
			return Result{}, tryErr(err)
		}
		if ws.ws.Has(op.Key) {
			s.staged = true // what it decided on may be staged
		}
		return Result{}, err
	}
	s.staged = true
	return modified(op, res, w), nil
}

// tryErr maps the coordinator's would-block to Try's reasons.
func tryErr(err error) error {
	switch {
	case errors.Is(err, coordinator.ErrQuorum):
		return wouldBlock(ReasonQuorum)
	case errors.Is(err, storage.ErrSetFull):
		return wouldBlock(ReasonSetFull)
	case errors.Is(err, storage.ErrWouldBlock):
		return wouldBlock(ReasonLockBusy) // a key's stripe, or the seal's lock
	}
	return err
}

// TakeStaged reports whether a Try since the last TakeStaged depends on the
// write set's next commit (it staged a write, or read a key the set holds), and
// clears it. A front end that gets true must not let that op's reply leave
// before the commit, and answers an error instead if the commit fails.
func (s *Session) TakeStaged() bool {
	st := s.staged
	s.staged = false
	return st
}

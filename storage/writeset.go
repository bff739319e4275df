package storage

import (
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble"

	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/ring"
)

// ErrWouldBlock is returned by the calls that never wait (WriteSet.Update) when
// they cannot go on without waiting: nothing was read, run or written, and no
// lock was taken. The caller runs the operation where it may wait (Update, on
// a goroutine of its own) or tries again later. The errors below wrap it with
// the reason.
var ErrWouldBlock = errors.New("storage: would block")

// The reasons a WriteSet.Update would block.
var (
	// ErrLockBusy: another writer (an Update, another set, a partition drop,
	// ExclusivePartition, the reaper) holds the key's lock stripe.
	ErrLockBusy = fmt.Errorf("%w: key lock busy", ErrWouldBlock)
	// ErrSetFull: the set holds its bound of writes or bytes (maxSetWrites,
	// maxSetBytes); commit it, then stage again.
	ErrSetFull = fmt.Errorf("%w: write set full", ErrWouldBlock)
)

// A set's bounds: one group commit's (maxGroupWrites, maxGroupBytes), so a set
// is one group's worth of work and its locks are held for one commit's time.
const (
	maxSetWrites = maxGroupWrites
	maxSetBytes  = maxGroupBytes
)

// WriteSet is UpdateBatch made incremental, for an event loop that must never
// wait: Update stages one read-merge-write at a time, taking the key's lock
// stripe with TryLock (ErrWouldBlock, nothing done, when it is busy) and keeping
// it until the set ends; Commit writes every staged change with one Pebble
// commit (a group commit when synced), brings the record cache, indexes,
// counts, memory sums and Observer in step, then releases the locks.
//
// Within a set a key's writes run in order on what the ones before left, as one
// Update after another would, and Get reads the set first, so a pipeline's SET k
// then GET k sees its own write before it is committed. Outside the set nothing
// sees a staged write before Commit has applied it (the key's lock is held, and
// the write is in no Pebble batch that was committed). A set's caller must not
// acknowledge a staged write, or anything read from the set, before Commit
// returns nil: it is durable then (as after Update for Commit(true), as after
// UpdateNoSync for Commit(false)). A failed Commit fails every write staged in
// it. The set ends with Commit or Discard; it is then empty and may be used
// again. The owner must end a set soon (one event-loop iteration): its locks
// keep writers of the same stripes, the partition drops and ExclusivePartition
// waiting, and Close waits for no set (a set committed after Close gets
// ErrClosed).
//
// A WriteSet is used by one goroutine at a time. Lock order: a set takes
// stripes in any order but never waits for one, so it cannot deadlock with the
// ascending order of UpdateBatch and the drops; while it holds some, a drop
// may hold others and wait for the set's, and the set's Update of those
// returns ErrLockBusy until its Commit lets the drop through.
type WriteSet struct {
	s       *Store
	bounded bool          // maxSetWrites and maxSetBytes apply (not UpdateBatch's set)
	b       *pebble.Batch // nil until the first change is staged
	entries []setEntry    // one per distinct key, in order of first appearance
	byKey   map[string]int
	held    map[uint32]struct{} // lock stripes the set holds
	holds   []setHold
	n       int   // Updates admitted since the set began
	err     error // a staging error: the batch is unusable, Commit fails
}

// setEntry is one key's change: the stored record as loaded under the key's
// lock, and once changed (the set staged a write) the last write's outcome.
type setEntry struct {
	staged
	changed bool
}

type setHold struct {
	token   any
	release func()
}

// NewWriteSet returns an empty set bounded to maxSetWrites Updates and about
// maxSetBytes of staged bytes.
func (s *Store) NewWriteSet() *WriteSet { return s.newWriteSet(true) }

func (s *Store) newWriteSet(bounded bool) *WriteSet {
	return &WriteSet{s: s, bounded: bounded, byKey: make(map[string]int), held: make(map[uint32]struct{})}
}

// Store returns the store the set writes to.
func (ws *WriteSet) Store() *Store { return ws.s }

// Len returns the number of Updates the set admitted since it began (those that
// did not return ErrWouldBlock): writes, writes that changed nothing and failed
// ones, each of which a synced Commit covers.
func (ws *WriteSet) Len() int { return ws.n }

// full reports whether the set is at its bound.
func (ws *WriteSet) full() bool {
	return ws.bounded && (ws.n >= maxSetWrites || ws.b != nil && ws.b.Len() >= maxSetBytes)
}

// Update is Store.Update staged in the set: it reads key's record (from the set
// when the key is in it already, else from the store, under the key's lock,
// which the set then keeps), runs fn on it and stages the result. It returns
// the record as it will be stored once Commit returns nil (the current one if
// fn returned ErrNoChange, which stages nothing). An error from fn is returned
// and stages nothing. It never waits for a lock: when the key's lock stripe is
// busy (ErrLockBusy) or the set is full (ErrSetFull) it returns an error
// wrapping ErrWouldBlock having done nothing, fn not run.
//
// A staging error (Pebble's) leaves the set unusable: every later Update and
// the Commit return it, and nothing of the set is written.
func (ws *WriteSet) Update(key []byte, fn UpdateFunc) (_ record.Record, err error) {
	s := ws.s
	if err := s.enter(); err != nil {
		return record.Record{}, err
	}
	defer s.exit(&err)
	if ws.err != nil {
		return record.Record{}, ws.err
	}
	if ws.full() {
		return record.Record{}, ErrSetFull
	}
	i, in := ws.byKey[string(key)]
	h := ring.KeyHash(key)
	if !in {
		stripe := s.stripe(h)
		if _, ok := ws.held[stripe]; !ok {
			if !s.locks[stripe].TryLock() {
				return record.Record{}, ErrLockBusy
			}
			ws.held[stripe] = struct{}{}
		}
	}
	ws.n++
	if !in {
		p := s.partition(h)
		dk := dataKey(nil, p, h, key)
		cur, curEnc, found, err := s.load(dk)
		if err != nil {
			return record.Record{}, err // the stripe stays held until the set ends
		}
		i = len(ws.entries)
		ws.entries = append(ws.entries, setEntry{staged: staged{kf: s.kf, dk: dk, p: p, h: h, key: dk[len(dk)-len(key):], cur: cur, curEnc: curEnc, found: found}})
		ws.byKey[string(key)] = i
	}
	e := &ws.entries[i]
	base, has := e.cur, e.found
	if e.changed {
		if base, has, err = e.latest(); err != nil {
			return record.Record{}, err
		}
	}
	var next record.Record
	guest(func() { next, err = fn(base, has) })
	switch {
	case errors.Is(err, ErrNoChange):
		return base, nil
	case err != nil:
		return record.Record{}, err
	}
	// As Update: derived fields kept, no element left without its layer.
	if next, err = deriveHeader(base, next, nil); err != nil {
		return record.Record{}, fmt.Errorf("storage: update %q: %w", key, err)
	}
	if ws.b == nil {
		ws.b = s.db.NewBatch()
	}
	// next may alias the caller's buffers, which may change before Commit: the
	// entry keeps its encoding (a copy) and what committed needs, not next.
	e.next = next
	if e.changed {
		err = e.restage(ws.b, e.newReap, e.newGrave)
	} else {
		err = e.stage(ws.b)
	}
	e.next, e.changed = record.Record{}, true
	if err != nil {
		ws.err = fmt.Errorf("storage: write: %w", err)
		return record.Record{}, ws.err
	}
	return next, nil
}

// latest returns the key's record as the set leaves it, decoded from the set's
// own copy.
func (e *setEntry) latest() (record.Record, bool, error) {
	enc := e.curEnc
	if e.changed {
		enc = e.enc
	}
	if (e.changed && !e.exists) || (!e.changed && !e.found) {
		return record.Record{}, false, nil
	}
	return decodeRecord(e.dk, enc)
}

// Get is Store.TryGet that sees the set's writes: a key the set staged a write
// for reads as the set leaves it, one it read as it read it, and any other as
// the store holds it. It never waits for a lock.
func (ws *WriteSet) Get(key []byte) (rec record.Record, found bool, err error) {
	if i, ok := ws.byKey[string(key)]; ok {
		e := &ws.entries[i]
		defer ws.s.touch(e.h, &found)
		return e.latest()
	}
	h := ring.KeyHash(key)
	_, held := ws.held[ws.s.stripe(h)]
	return ws.s.read(key, h, held)
}

// Has reports whether key is in the set: a write of it was staged, or an
// Update read it. A read of such a key (Get) may see what the set staged, so
// its answer must wait for Commit, as a staged write's does.
func (ws *WriteSet) Has(key []byte) bool {
	_, ok := ws.byKey[string(key)]
	return ok
}

// Hold keeps release, something the set's writes need until they are applied
// (coordinator's admission of a local write, which Seal waits for), and runs it
// when the set ends, after its locks are released. Holding a token the set
// holds already does nothing.
func (ws *WriteSet) Hold(token any, release func()) {
	if !ws.Holding(token) {
		ws.holds = append(ws.holds, setHold{token, release})
	}
}

// Holding reports whether the set holds token (Hold).
func (ws *WriteSet) Holding(token any) bool {
	return slices.ContainsFunc(ws.holds, func(h setHold) bool { return h.token == token })
}

// Commit applies every change staged in the set as one Pebble batch, then
// brings the record cache, the indexes' followers (counts, memory sums) and
// the Observer in step under the keys' locks, then ends the set (releases its
// locks and holds). With sync the writes are durable when it returns nil, as
// after Update: the commit is a group commit with concurrent synced writers,
// and a set that staged nothing but read (an Update that changed nothing, or
// failed) still syncs the WAL, since what it read may be this node's own
// unsynced write. Without sync they are visible, and durable once a later Sync
// has returned, as after UpdateNoSync. A failed commit fails every staged
// write: none may be acknowledged. The set is empty afterwards either way.
func (ws *WriteSet) Commit(sync bool) (err error) {
	defer ws.end()
	if ws.n == 0 {
		return nil
	}
	if ws.err != nil {
		return ws.err
	}
	s := ws.s
	if err := s.enter(); err != nil {
		return err // nothing reached Pebble
	}
	defer s.exit(&err)
	wo := pebble.NoSync
	if sync {
		wo = s.wo
	}
	changed := ws.b != nil && !ws.b.Empty()
	switch {
	case changed:
		err = s.commit(ws.b, wo)
	case wo.Sync:
		err = s.gc.commit(nil)
	}
	if err != nil {
		// Pebble may have applied the batch before its WAL write or sync
		// failed: the cache forgets the changed keys (see write).
		for i := range ws.entries {
			if ws.entries[i].changed {
				s.rc.forget(ws.entries[i].dk)
			}
		}
		return fmt.Errorf("storage: write: %w", err)
	}
	for i := range ws.entries {
		if ws.entries[i].changed {
			s.committed(&ws.entries[i].staged)
		}
	}
	return nil
}

// Discard ends the set without writing anything it staged: the store is as if
// none of its Updates had run (the record cache may hold records they read).
func (ws *WriteSet) Discard() { ws.end() }

// end empties the set: its batch closed, its locks and holds released.
func (ws *WriteSet) end() {
	if ws.b != nil {
		ws.b.Close()
		ws.b = nil
	}
	for stripe := range ws.held {
		ws.s.locks[stripe].Unlock()
	}
	clear(ws.held)
	clear(ws.byKey)
	clear(ws.entries)
	ws.entries = ws.entries[:0]
	holds := ws.holds
	ws.holds = nil
	ws.n, ws.err = 0, nil
	for _, h := range holds {
		h.release()
	}
}

// lockKeys takes the lock stripes of keys in ascending order, waiting for each,
// as UpdateBatch does, so that every Update of keys then finds its stripe held.
// The set must hold no stripe yet.
func (ws *WriteSet) lockKeys(keys [][]byte) {
	stripes := make([]uint32, 0, len(keys))
	for _, k := range keys {
		stripes = append(stripes, ws.s.stripe(ring.KeyHash(k)))
	}
	slices.Sort(stripes)
	for _, stripe := range slices.Compact(stripes) {
		ws.s.locks[stripe].Lock()
		ws.held[stripe] = struct{}{}
	}
}

package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"

	"github.com/dynakv/dynakv/record"
)

// failingFS is a vfs.FS whose WAL files fail, once armed, to write (write set)
// or to fsync: a disk that filled up or went bad under a running store.
type failingFS struct {
	vfs.FS
	write bool
	armed atomic.Bool
}

func (fs *failingFS) wrap(f vfs.File, name string, err error) (vfs.File, error) {
	if err != nil || !isWAL(name) {
		return f, err
	}
	return &failingFile{File: f, fs: fs}, nil
}

func (fs *failingFS) Create(name string) (vfs.File, error) {
	f, err := fs.FS.Create(name)
	return fs.wrap(f, name, err)
}

func (fs *failingFS) ReuseForWrite(oldname, newname string) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname)
	return fs.wrap(f, newname, err)
}

type failingFile struct {
	vfs.File
	fs *failingFS
}

func (f *failingFile) Write(p []byte) (int, error) {
	if f.fs.write && f.fs.armed.Load() {
		return 0, syscall.ENOSPC
	}
	return f.File.Write(p)
}

func (f *failingFile) Sync() error {
	if !f.fs.write && f.fs.armed.Load() {
		return syscall.EIO
	}
	return f.File.Sync()
}

func (f *failingFile) SyncData() error { return f.Sync() }

// countingHandler counts the store's failure reports in its log.
type countingHandler struct {
	slog.Handler
	failures *atomic.Int64
}

func (h countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, "storage engine failed") {
		h.failures.Add(1)
	}
	return nil
}

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }

// openFailing opens a store on a failingFS in dir; the store is left as the test
// leaves it (a failed store's Pebble is never closed).
func openFailing(t *testing.T, cfg Config, fs *failingFS, failures *atomic.Int64) *Store {
	t.Helper()
	cfg.Dir, cfg.Partitions, cfg.ReapInterval = t.TempDir(), 8, time.Hour
	cfg.Logger = slog.New(countingHandler{slog.DiscardHandler, failures})
	s, err := openOn(cfg, fs)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkFailed checks that every kind of call on a failed store returns its
// failure, that Failed is closed and that the failure was reported once.
func checkFailed(t *testing.T, s *Store, failures *atomic.Int64) {
	t.Helper()
	select {
	case <-s.Failed():
	default:
		t.Fatal("Failed not closed")
	}
	failure := s.Err()
	if !errors.Is(failure, ErrEngineFailed) {
		t.Fatalf("Err() = %v, want ErrEngineFailed", failure)
	}
	calls := map[string]error{}
	_, calls["Update"] = s.Update([]byte("k"), setTo(rec(val("later", 0))))
	_, calls["UpdateNoSync"] = s.UpdateNoSync([]byte("k"), setTo(rec(val("later", 0))))
	calls["UpdateBatch"] = s.UpdateBatch([][]byte{[]byte("k")}, []UpdateFunc{setTo(rec(val("later", 0)))})[0]
	_, calls["WriteSet.Update"] = s.NewWriteSet().Update([]byte("k"), setTo(rec(val("later", 0))))
	_, _, calls["Get"] = s.Get([]byte("k"))
	_, _, calls["TryGet"] = s.TryGet([]byte("k"))
	_, calls["GetEncoded"] = s.GetEncoded([]byte("k"))
	calls["Sync"] = s.Sync()
	calls["PutMeta"] = s.PutMeta("m", []byte("v"))
	_, _, calls["GetMeta"] = s.GetMeta("m")
	_, calls["UpdateHint"] = s.UpdateHint("o", []byte("k"), setTo(rec(val("later", 0))))
	calls["ScanEncoded"] = s.ScanEncoded(0, 0, func(uint64, []byte, []byte) bool { return true })
	calls["DropAll"] = s.DropAll()
	_, calls["Reap"] = s.Reap(10)
	_, _, calls["GravesFrom"] = s.GravesFrom(nil, 1<<62, 10, nil)
	calls["Close"] = s.Close()
	for name, err := range calls {
		if !errors.Is(err, ErrEngineFailed) || !strings.Contains(err.Error(), failure.Error()) {
			t.Errorf("%s on a failed store: %v, want the failure %v", name, err, failure)
		}
	}
	if n := failures.Load(); n != 1 {
		t.Errorf("the failure was reported %d times, want once", n)
	}
	if err := s.fail(errors.New("another"), nil); err != failure || failures.Load() != 1 {
		t.Errorf("a second failure changed Err to %v or was reported again", err)
	}
}

// TestEngineFailure: a disk that fails under Pebble makes Pebble panic (or call
// Fatalf) in the call that hit it; the call returns an error wrapping
// ErrEngineFailed, the store fails once, and every later call returns the
// failure without reaching Pebble, so no later write is acknowledged.
func TestEngineFailure(t *testing.T) {
	for _, tc := range []struct {
		name string
		sync SyncMode
		// fail runs the call that meets the failed disk.
		fail func(s *Store) error
	}{
		{"update, group commit", SyncAlways, func(s *Store) error {
			_, err := s.Update([]byte("k"), setTo(rec(val("lost", 0))))
			return err
		}},
		{"batch, group commit", SyncAlways, func(s *Store) error {
			return errors.Join(s.UpdateBatch([][]byte{[]byte("k"), []byte("j")}, []UpdateFunc{setTo(rec(val("lost", 0))), setTo(rec(val("lost", 0)))})...)
		}},
		{"hint, own commit", SyncAlways, func(s *Store) error {
			_, err := s.UpdateHint("owner", []byte("k"), setTo(rec(val("lost", 0))))
			return err
		}},
		{"update, no sync", SyncNone, func(s *Store) error {
			// The WAL is written behind the commit: a later synced commit
			// meets the error.
			if _, err := s.UpdateNoSync([]byte("k"), setTo(rec(val("lost", 0)))); err != nil {
				return err
			}
			return s.PutMeta("m", []byte("v"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var failures atomic.Int64
			fs := &failingFS{FS: vfs.Default, write: true}
			s := openFailing(t, Config{Sync: tc.sync}, fs, &failures)
			put(t, s, "k", rec(val("kept", 0)))
			fs.armed.Store(true)
			err := tc.fail(s)
			if !errors.Is(err, ErrEngineFailed) || !strings.Contains(err.Error(), syscall.ENOSPC.Error()) {
				t.Fatalf("the call that met the failed disk returned %v, want ErrEngineFailed for ENOSPC", err)
			}
			checkFailed(t, s, &failures)
		})
	}
}

// TestEngineFailureFsync: a failed fsync of the WAL by the store (SyncInterval's
// periodic one, or one for metadata) fails the store.
func TestEngineFailureFsync(t *testing.T) {
	t.Run("periodic", func(t *testing.T) {
		var failures atomic.Int64
		fs := &failingFS{FS: vfs.Default}
		s := openFailing(t, Config{Sync: SyncInterval, SyncInterval: time.Millisecond}, fs, &failures)
		put(t, s, "k", rec(val("kept", 0)))
		fs.armed.Store(true)
		put(t, s, "k", rec(val("in the OS", 0))) // the WAL has something to fsync
		select {
		case <-s.Failed():
		case <-time.After(10 * time.Second):
			t.Fatal("the store did not fail after its periodic fsync failed")
		}
		if err := s.Err(); !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), "periodic WAL fsync") {
			t.Errorf("Err() = %v, want the periodic fsync's EIO", err)
		}
		checkFailed(t, s, &failures)
	})
	t.Run("metadata", func(t *testing.T) {
		var failures atomic.Int64
		fs := &failingFS{FS: vfs.Default}
		s := openFailing(t, Config{Sync: SyncInterval, SyncInterval: time.Hour}, fs, &failures)
		fs.armed.Store(true)
		if err := s.PutMeta("m", []byte("v")); !errors.Is(err, ErrEngineFailed) || !errors.Is(err, syscall.EIO) {
			t.Fatalf("PutMeta with a failing fsync: %v", err)
		}
		checkFailed(t, s, &failures)
	})
}

// TestEnginePanicAtTheBoundary: a panic raised inside a call (here by a hook
// where the drop's batch is about to commit) is recovered by the call, which
// returns it as its error, with every key lock released.
func TestEnginePanicAtTheBoundary(t *testing.T) {
	var failures atomic.Int64
	cfg := Config{InMemory: true, Partitions: 8, ReapInterval: time.Hour,
		Logger: slog.New(countingHandler{slog.DiscardHandler, &failures})}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, "k", rec(val("v", 0)))
	s.testHookDrop = func(*pebble.Batch) { panic("pebble: wedged") }
	if err := s.DropAll(); !errors.Is(err, ErrEngineFailed) || !strings.Contains(err.Error(), "pebble: wedged") {
		t.Fatalf("DropAll = %v", err)
	}
	for i := range s.locks {
		if !s.locks[i].TryLock() {
			t.Fatalf("key lock stripe %d still held after the panic", i)
		}
		s.locks[i].Unlock()
	}
	checkFailed(t, s, &failures)
}

// panicObserver panics on every change it hears of.
type panicObserver struct{}

func (panicObserver) RecordChanged(int, uint64, []byte, []byte, []byte) { panic("observer bug") }
func (panicObserver) PartitionsDropped(int, int)                        { panic("observer bug") }

// TestCallerPanicIsNotTheEngines: a panic in the caller's code that a call runs
// goes on through the call, with its value and stack, and leaves the store
// working (key locks released).
func TestCallerPanicIsNotTheEngines(t *testing.T) {
	s := openMem(t, Config{Partitions: 8})
	put(t, s, "k", rec(val("v", 0)))
	bug := func(record.Record, bool) (record.Record, error) { panic("caller bug") }
	for name, call := range map[string]func(){
		"Update":      func() { s.Update([]byte("k"), bug) },
		"UpdateBatch": func() { s.UpdateBatch([][]byte{[]byte("k")}, []UpdateFunc{bug}) },
		"WriteSet": func() {
			ws := s.NewWriteSet()
			defer ws.Discard()
			ws.Update([]byte("k"), bug)
		},
		"UpdateHint": func() { s.UpdateHint("o", []byte("k"), bug) },
		"Scan": func() {
			s.Scan(s.PartitionOf([]byte("k")), 0, func(uint64, []byte, record.Record) bool { panic("caller bug") })
		},
		"ExclusivePartition": func() { s.ExclusivePartition(0, func() error { panic("caller bug") }) },
		"DropPartitionIf":    func() { s.DropPartitionIf(0, func() bool { panic("caller bug") }) },
		// A panic in a nested call's callback crosses both calls.
		"nested": func() {
			s.ExclusivePartition(s.PartitionOf([]byte("k")), func() error {
				return s.ScanEncoded(s.PartitionOf([]byte("k")), 0, func(uint64, []byte, []byte) bool { panic("caller bug") })
			})
		},
	} {
		t.Run(name, func(t *testing.T) {
			var got any
			func() {
				defer func() { got = recover() }()
				call()
			}()
			if fmt.Sprintf("%v", got) != "caller bug" || !strings.Contains(fmt.Sprintf("%+v", got), "TestCallerPanicIsNotTheEngines") {
				t.Fatalf("recovered %+v, want the caller's panic with its stack", got)
			}
			if err := s.Err(); err != nil {
				t.Fatalf("the store failed: %v", err)
			}
			put(t, s, "k", rec(val("v", 0))) // the key's lock is free
		})
	}
	// The Observer is the caller's code too.
	s.cfg.Observer = panicObserver{}
	func() {
		defer func() {
			if r := recover(); fmt.Sprint(r) != "observer bug" {
				t.Errorf("recovered %v, want the observer's panic", r)
			}
		}()
		s.Update([]byte("k"), setTo(rec(val("w", 0))))
	}()
	s.cfg.Observer = nil
	if err := s.Err(); err != nil {
		t.Fatalf("the store failed: %v", err)
	}
	put(t, s, "k", rec(val("v", 0)))
}

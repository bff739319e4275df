package storage

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/vfs"
)

// SyncMode says when a write becomes durable, relative to its acknowledgement.
type SyncMode string

const (
	// SyncInterval (the default) acknowledges a write once its WAL record is in
	// the operating system (written with write(2), as Redis's appendfsync
	// everysec does), and fsyncs the WAL every Config.SyncInterval. A killed or
	// crashed process loses nothing acknowledged; a power loss or kernel crash
	// can lose the writes of the last interval on this node (the other replicas
	// hold them unless they lost power too).
	SyncInterval SyncMode = "interval"
	// SyncAlways acknowledges a write after the WAL fsync that covers it
	// (concurrent writes share one fsync), so even a power loss keeps it, on a
	// disk that honours fsync. Slower: every write waits for the disk.
	SyncAlways SyncMode = "always"
	// SyncNone acknowledges a write before its WAL record has left the process
	// (Pebble writes the WAL in the background): even a killed process can lose
	// the last writes. For tests and benchmarks.
	SyncNone SyncMode = "none"
)

// ParseSyncMode parses a --fsync value.
func ParseSyncMode(s string) (SyncMode, error) {
	switch m := SyncMode(s); m {
	case SyncInterval, SyncAlways, SyncNone:
		return m, nil
	}
	return "", fmt.Errorf("storage: fsync mode must be %q, %q or %q, got %q", SyncInterval, SyncAlways, SyncNone, s)
}

// walFS is the file system of a store in SyncInterval mode: it hands Pebble WAL
// files whose syncs return at once (Pebble has written the data with write(2)
// when it asks for the sync, so the write is in the OS when it is acknowledged)
// and fsyncs them for real every interval, on Close, and when asked (syncNow).
// Every other file (sstables, the MANIFEST, directories) syncs as Pebble asks.
type walFS struct {
	vfs.FS
	mu    sync.Mutex
	files map[*walFile]struct{}
}

func newWALFS(fs vfs.FS) *walFS { return &walFS{FS: fs, files: make(map[*walFile]struct{})} }

func isWAL(name string) bool { return strings.HasSuffix(name, ".log") }

func (fs *walFS) track(f vfs.File, name string, err error) (vfs.File, error) {
	if err != nil || !isWAL(name) {
		return f, err
	}
	w := &walFile{File: f, fs: fs}
	fs.mu.Lock()
	fs.files[w] = struct{}{}
	fs.mu.Unlock()
	return w, nil
}

// Create implements vfs.FS.
func (fs *walFS) Create(name string) (vfs.File, error) {
	f, err := fs.FS.Create(name)
	return fs.track(f, name, err)
}

// ReuseForWrite implements vfs.FS: Pebble recycles old WAL files this way.
func (fs *walFS) ReuseForWrite(oldname, newname string) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname)
	return fs.track(f, newname, err)
}

// syncNow fsyncs every open WAL file that was written since its last fsync.
func (fs *walFS) syncNow() error {
	fs.mu.Lock()
	files := make([]*walFile, 0, len(fs.files))
	for f := range fs.files {
		files = append(files, f)
	}
	fs.mu.Unlock()
	var first error
	for _, f := range files {
		if err := f.flush(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// walFile is a WAL file of a walFS.
type walFile struct {
	vfs.File
	fs *walFS
	// writes counts the writes that returned: each was in the OS when it was
	// counted, so an fsync begun after reading the count covers them all.
	writes atomic.Uint64
	mu     sync.Mutex // serialises real fsyncs and Close
	synced uint64     // writes covered by the last real fsync; guarded by mu
	done   bool
}

// Write implements io.Writer.
func (f *walFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	f.writes.Add(1)
	return n, err
}

// WriteAt implements io.WriterAt.
func (f *walFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.File.WriteAt(p, off)
	f.writes.Add(1)
	return n, err
}

// Sync returns at once: the data is in the OS, and the interval loop fsyncs it.
func (f *walFile) Sync() error { return nil }

// SyncData is Sync.
func (f *walFile) SyncData() error { return nil }

// SyncTo reports a full sync, as Sync does.
func (f *walFile) SyncTo(int64) (bool, error) { return true, nil }

// flush fsyncs the file if it was written since its last fsync.
func (f *walFile) flush() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.writes.Load() // before the fsync: a write still in progress is left for the next one
	if f.done || n == f.synced {
		return nil
	}
	if err := f.File.SyncData(); err != nil {
		return fmt.Errorf("storage: fsync wal: %w", err)
	}
	f.synced = n
	return nil
}

// Close fsyncs the file (Pebble closes a WAL when it rotates to the next one, so
// every WAL but the current one is durable) and stops tracking it.
func (f *walFile) Close() error {
	err := f.flush()
	f.mu.Lock()
	f.done = true
	f.mu.Unlock()
	f.fs.mu.Lock()
	delete(f.fs.files, f)
	f.fs.mu.Unlock()
	if cerr := f.File.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncWALNow fsyncs the WAL files at once. A failure fails the store (see
// Failed), which acknowledges no write from then on: after a failed fsync the
// kernel may have dropped the dirty pages, so a retry could report success for
// data that is gone (Pebble fails too when its own fsync fails).
func (s *Store) syncWALNow(why string) error {
	if err := s.walFS.syncNow(); err != nil {
		return s.fail(fmt.Errorf("%s: %w", why, err), nil)
	}
	return nil
}

// syncLoop fsyncs the WAL every interval until the store stops or fails.
func (s *Store) syncLoop() {
	s.every(s.cfg.SyncInterval, func() { _ = s.syncWALNow("periodic WAL fsync") })
}

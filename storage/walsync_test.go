package storage

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/vfs"
)

func TestParseSyncMode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want SyncMode
		ok   bool
	}{
		{"interval", SyncInterval, true},
		{"always", SyncAlways, true},
		{"none", SyncNone, true},
		{"", "", false},
		{"Always", "", false},
		{"everysec", "", false},
	} {
		got, err := ParseSyncMode(tc.in)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("ParseSyncMode(%q) = %q, %v", tc.in, got, err)
		}
	}
	if err := (Config{InMemory: true, Partitions: 8, Sync: "sometimes"}).Validate(); err == nil {
		t.Error("Validate accepted fsync mode \"sometimes\"")
	}
}

// syncCounter is a vfs.FS whose files count their real syncs.
type syncCounter struct {
	vfs.FS
	syncs atomic.Int64
}

type countedFile struct {
	vfs.File
	n *atomic.Int64
}

func (f countedFile) Sync() error     { f.n.Add(1); return f.File.Sync() }
func (f countedFile) SyncData() error { f.n.Add(1); return f.File.SyncData() }

func (fs *syncCounter) Create(name string) (vfs.File, error) {
	f, err := fs.FS.Create(name)
	if err != nil {
		return nil, err
	}
	return countedFile{f, &fs.syncs}, nil
}

// TestWALFSDefersSyncs: a WAL file's Sync returns without reaching the disk,
// syncNow and Close fsync it once if it was written since, and files that are
// not WALs sync when asked.
func TestWALFSDefersSyncs(t *testing.T) {
	under := &syncCounter{FS: vfs.Default}
	fs := newWALFS(under)
	dir := t.TempDir()
	wal, err := fs.Create(filepath.Join(dir, "000001.log"))
	if err != nil {
		t.Fatal(err)
	}
	step := func(name string, want int64) {
		t.Helper()
		if got := under.syncs.Load(); got != want {
			t.Fatalf("%s: %d real syncs, want %d", name, got, want)
		}
	}
	if _, err := wal.Write([]byte("record")); err != nil {
		t.Fatal(err)
	}
	if err := wal.Sync(); err != nil {
		t.Fatal(err)
	}
	step("WAL Sync", 0)
	if err := fs.syncNow(); err != nil {
		t.Fatal(err)
	}
	step("syncNow after a write", 1)
	if err := fs.syncNow(); err != nil {
		t.Fatal(err)
	}
	step("syncNow with nothing new", 1)
	if _, err := wal.Write([]byte("more")); err != nil {
		t.Fatal(err)
	}
	if err := wal.Close(); err != nil {
		t.Fatal(err)
	}
	step("Close after a write", 2)
	if err := fs.syncNow(); err != nil {
		t.Fatal(err)
	}
	step("syncNow after Close", 2)
	if len(fs.files) != 0 {
		t.Fatalf("closed WAL still tracked: %d files", len(fs.files))
	}
	sst, err := fs.Create(filepath.Join(dir, "000002.sst"))
	if err != nil {
		t.Fatal(err)
	}
	defer sst.Close()
	if err := sst.Sync(); err != nil {
		t.Fatal(err)
	}
	step("sstable Sync", 3)
}

// TestIntervalModeWritesReachTheOSBeforeTheAck: with SyncInterval, an
// acknowledged write is in the WAL file when Update returns, so a copy of the
// data directory taken then (what SIGKILL leaves: the kernel has the data) holds
// every acknowledged write, and the store opened on it reports the unclean stop.
func TestIntervalModeWritesReachTheOSBeforeTheAck(t *testing.T) {
	dir := t.TempDir()
	s := open(t, Config{Dir: dir, Partitions: 8, Sync: SyncInterval})
	if _, unclean := s.Unclean(); unclean {
		t.Fatal("fresh data directory reported unclean")
	}
	const n = 500
	for i := range n {
		put(t, s, fmt.Sprintf("k%d", i), rec(val(fmt.Sprint(i), 0)))
	}
	image := t.TempDir()
	if err := os.CopyFS(image, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	c := open(t, Config{Dir: image, Partitions: 8, Sync: SyncAlways})
	stop, unclean := c.Unclean()
	if !unclean {
		t.Error("a copy of a running store's directory was not reported unclean")
	}
	// The stop is described by the process that stopped, not the one that opens.
	if want := (UncleanStop{Mode: SyncInterval, SameBoot: bootID() != ""}); stop != want {
		t.Errorf("UncleanStop = %+v, want %+v", stop, want)
	}
	for i := range n {
		r, found := mustGet(t, c, fmt.Sprintf("k%d", i))
		if !found || !sameRecord(r, rec(val(fmt.Sprint(i), 0))) {
			t.Fatalf("acknowledged write k%d missing from the crash image: %v, %v", i, r, found)
		}
	}
	// The unclean mark outlives clean restarts until ClearUnclean: a node that
	// stopped before taking its new actor id takes one at its next start.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = open(t, Config{Dir: image, Partitions: 8})
	if again, unclean := c.Unclean(); !unclean || again != stop {
		t.Errorf("after a clean restart before ClearUnclean: %+v, %v; want the first stop %+v", again, unclean, stop)
	}
	if err := c.ClearUnclean(); err != nil {
		t.Fatal(err)
	}
	if _, unclean := c.Unclean(); unclean {
		t.Fatal("unclean after ClearUnclean")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = open(t, Config{Dir: image, Partitions: 8})
	if _, unclean := c.Unclean(); unclean {
		t.Error("unclean after ClearUnclean and a clean restart")
	}
	// A clean close leaves no mark.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r := open(t, Config{Dir: dir, Partitions: 8})
	if _, unclean := r.Unclean(); unclean {
		t.Error("a cleanly closed store reported unclean")
	}
	if got := r.Count(); got != n {
		t.Errorf("Count after reopen = %d, want %d", got, n)
	}
}

// TestParseOpenMark: a mark from another boot, or without a boot id, is not the
// same boot; the mode is read back as written.
func TestParseOpenMark(t *testing.T) {
	cur := bootID()
	for _, tc := range []struct {
		mark string
		want UncleanStop
	}{
		{"interval\n" + cur, UncleanStop{Mode: SyncInterval, SameBoot: cur != ""}},
		{"always\n00000000-0000-0000-0000-000000000000", UncleanStop{Mode: SyncAlways}},
		{"none\n", UncleanStop{Mode: SyncNone}},
		{"\x01", UncleanStop{Mode: "\x01"}}, // a mark from before the mode was recorded
		{"", UncleanStop{}},
	} {
		if got := parseOpenMark([]byte(tc.mark)); got != tc.want {
			t.Errorf("parseOpenMark(%q) = %+v, want %+v", tc.mark, got, tc.want)
		}
	}
}

package storage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
)

// writeFormatFixtures rewrites testdata/format-v1-*.tar.gz (see TestFormatFixtures).
var writeFormatFixtures = flag.Bool("write-format-fixtures", false, "rewrite the data directory fixtures in testdata")

// TestFormatIsPebblesNewest: formatCurrent is the newest format of the Pebble in
// go.mod. When Pebble changes, this fails, for someone to decide which format
// new stores get and what older binaries and the next Pebble read (format.go).
func TestFormatIsPebblesNewest(t *testing.T) {
	if formatCurrent != pebble.FormatNewest {
		t.Fatalf("formatCurrent = %v, Pebble's FormatNewest = %v: choose the format anew (format.go)", formatCurrent, pebble.FormatNewest)
	}
}

// TestNewStoreFormat: a new store, on disk in each sync mode or in memory, is at
// formatCurrent, and stays there across a reopen.
func TestNewStoreFormat(t *testing.T) {
	for _, c := range []Config{
		{Sync: SyncInterval}, // through walFS
		{Sync: SyncAlways},
		{InMemory: true},
	} {
		name := string(c.Sync)
		if c.InMemory {
			name = "memory"
		}
		t.Run(name, func(t *testing.T) {
			c.Partitions = 16
			if !c.InMemory {
				c.Dir = filepath.Join(t.TempDir(), "data") // Open makes it
			}
			s := open(t, c)
			if got := s.db.FormatMajorVersion(); got != formatCurrent {
				t.Fatalf("new store at format %v, want %v", got, formatCurrent)
			}
			if c.InMemory {
				return
			}
			put(t, s, "k", rec(val("v", 0)))
			s.Close()
			if got := peekFormat(t, c.Dir); got != formatCurrent {
				t.Fatalf("closed store at format %v, want %v", got, formatCurrent)
			}
			s = open(t, c)
			if got := s.db.FormatMajorVersion(); got != formatCurrent {
				t.Fatalf("reopened store at format %v, want %v", got, formatCurrent)
			}
			if _, found := mustGet(t, s, "k"); !found {
				t.Fatal("record lost across the reopen")
			}
		})
	}
}

// TestOldStoreIsRatcheted: a data directory written as binaries before formatCurrent
// wrote it (no format: Pebble v1's FormatMostCompatible, RocksDB-format tables) opens
// at formatCurrent, with every record and metadata entry, its tables rewritten in
// Pebble's own format, the upgrade logged once, and the checks Open makes of the
// directory's own metadata (partition count) still working.
func TestOldStoreIsRatcheted(t *testing.T) {
	for _, mode := range []SyncMode{SyncInterval, SyncAlways} {
		t.Run(string(mode), func(t *testing.T) {
			dir := t.TempDir()
			writeStoreAt(t, dir, pebble.FormatMostCompatible, mode)
			if got := peekFormat(t, dir); got != pebble.FormatMostCompatible {
				t.Fatalf("old store written at %v, want FormatMostCompatible", got)
			}
			if n := tableFormats(t, dir)["rocksdb"]; n == 0 {
				t.Fatalf("old store has no RocksDB-format table to rewrite: %v", tableFormats(t, dir))
			}

			var logs lockedBuffer
			logger := slog.New(slog.NewTextHandler(&logs, nil))
			s := open(t, Config{Dir: dir, Partitions: 16, Sync: mode, Logger: logger})
			if got := s.db.FormatMajorVersion(); got != formatCurrent {
				t.Fatalf("old store opened at %v, want %v", got, formatCurrent)
			}
			checkStoreData(t, s)
			s.Close()
			if got := tableFormats(t, dir); got["rocksdb"] != 0 || got["leveldb"] != 0 {
				t.Fatalf("tables after the ratchet: %v, want Pebble's format only", got)
			}
			if got := peekFormat(t, dir); got != formatCurrent {
				t.Fatalf("closed store at %v, want %v", got, formatCurrent)
			}
			// The upgrade is logged before and after.
			if n := strings.Count(logs.String(), "upgrading the data directory's Pebble format"); n != 1 {
				t.Fatalf("upgrade logged %d times:\n%s", n, logs.String())
			}
			if !strings.Contains(logs.String(), "upgraded the data directory's Pebble format") {
				t.Fatalf("upgrade's end not logged:\n%s", logs.String())
			}

			// Once ratcheted, a reopen does no upgrade.
			logs = lockedBuffer{}
			logger = slog.New(slog.NewTextHandler(&logs, nil))
			s = open(t, Config{Dir: dir, Partitions: 16, Sync: mode, Logger: logger})
			checkStoreData(t, s)
			if strings.Contains(logs.String(), "Pebble format") {
				t.Fatalf("reopen of an upgraded store logged an upgrade:\n%s", logs.String())
			}
			s.Close()
			// The directory's own metadata is still checked.
			if s, err := Open(Config{Dir: dir, Partitions: 8, Sync: mode, Logger: quietLogger()}); !errors.Is(err, ErrPartitions) {
				if err == nil {
					s.Close()
				}
				t.Fatalf("open of the upgraded store with 8 partitions: %v, want ErrPartitions", err)
			}
		})
	}
}

// TestFormatFixtures opens data directories kept in testdata, written once by
// writeStoreAt on Pebble v1.1.5 (rewrite them with go test ./storage -run
// TestFormatFixtures -args -write-format-fixtures, on Pebble v1 only):
// format-v1-legacy as binaries before formatCurrent wrote it, and format-v1-s12a
// at formatCurrent (issue 19's step S12a). Unlike the directories the other tests
// write, they do not change with the code, so a later binary (Pebble v2) is
// checked against what this one wrote.
func TestFormatFixtures(t *testing.T) {
	fixtures := []struct {
		name   string
		format pebble.FormatMajorVersion
	}{
		{"format-v1-legacy", pebble.FormatMostCompatible},
		{"format-v1-s12a", formatCurrent},
	}
	if *writeFormatFixtures {
		for _, f := range fixtures {
			dir := filepath.Join(t.TempDir(), f.name)
			writeStoreAt(t, dir, f.format, SyncAlways)
			if err := tarDir(dir, filepath.Join("testdata", f.name+".tar.gz")); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			dir := untarDir(t, filepath.Join("testdata", f.name+".tar.gz"))
			if got := peekFormat(t, dir); got != f.format {
				t.Fatalf("fixture at format %v, want %v", got, f.format)
			}
			s := open(t, Config{Dir: dir, Partitions: 16})
			if got := s.db.FormatMajorVersion(); got != formatCurrent {
				t.Fatalf("fixture opened at %v, want %v", got, formatCurrent)
			}
			checkStoreData(t, s)
		})
	}
}

// fixtureKeys is how many records writeStoreAt writes; the first half reach a
// table, the rest stay in the WAL.
const fixtureKeys = 200

// writeStoreAt writes a store of 16 partitions at format f in dir and closes it.
func writeStoreAt(t *testing.T, dir string, f pebble.FormatMajorVersion, mode SyncMode) {
	t.Helper()
	s, err := Open(Config{Dir: dir, Partitions: 16, Sync: mode, Logger: quietLogger(), format: f})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.db.FormatMajorVersion(); got != f {
		t.Fatalf("store written at %v, want %v", got, f)
	}
	for i := range fixtureKeys {
		if i == fixtureKeys/2 {
			if err := s.db.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		put(t, s, fmt.Sprint("key", i), rec(val(fmt.Sprint("value", i), 0)))
	}
	if err := s.PutMeta("fixture", []byte("yes")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// checkStoreData checks what writeStoreAt wrote.
func checkStoreData(t *testing.T, s *Store) {
	t.Helper()
	for i := range fixtureKeys {
		r, found := mustGet(t, s, fmt.Sprint("key", i))
		if !found || len(r.Str.Siblings()) != 1 || string(r.Str.Siblings()[0].Data) != fmt.Sprint("value", i) {
			t.Fatalf("key%d = %+v, %v", i, r, found)
		}
	}
	if n := s.Metrics().Keys; n != fixtureKeys {
		t.Fatalf("%d keys counted, want %d", n, fixtureKeys)
	}
	for name, want := range map[string]string{"fixture": "yes", "partitions": "16", metaIndexVersion: indexVersion} {
		if v, ok, err := s.GetMeta(name); err != nil || !ok || string(v) != want {
			t.Fatalf("meta %q = %q, %v, %v; want %q", name, v, ok, err, want)
		}
	}
}

func peekFormat(t *testing.T, dir string) pebble.FormatMajorVersion {
	t.Helper()
	d, err := pebble.Peek(dir, vfs.Default)
	if err != nil || !d.Exists {
		t.Fatalf("Peek(%s) = %+v, %v", dir, d, err)
	}
	return d.FormatMajorVersion
}

// tableFormats counts the sstables in dir by the magic number that ends them:
// "rocksdb" and "leveldb" tables are the ones Pebble v2 does not read.
func tableFormats(t *testing.T, dir string) map[string]int {
	t.Helper()
	magics := map[string]string{
		"\x57\xfb\x80\x8b\x24\x75\x47\xdb": "leveldb",
		"\xf7\xcf\xf4\x85\xb7\x41\xe2\x88": "rocksdb",
		"\xf0\x9f\xaa\xb3\xf0\x9f\xaa\xb3": "pebble",
	}
	got := map[string]int{}
	ssts, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ssts {
		b, err := os.ReadFile(p)
		if err != nil || len(b) < 8 {
			t.Fatalf("read %s: %d bytes, %v", p, len(b), err)
		}
		name, ok := magics[string(b[len(b)-8:])]
		if !ok {
			name = fmt.Sprintf("unknown %q", b[len(b)-8:])
		}
		got[name]++
	}
	return got
}

// tarDir writes the regular files of dir (no subdirectories) as a gzipped tar.
func tarDir(dir, out string) error {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || e.Name() == "LOCK" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: e.Name(), Mode: 0o644, Size: int64(len(b)), Format: tar.FormatPAX}); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(out, buf.Bytes(), 0o644)
}

// untarDir extracts the tarDir archive in into a new temporary directory.
func untarDir(t *testing.T, in string) string {
	t.Helper()
	f, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return dir
		}
		if err != nil {
			t.Fatal(err)
		}
		if !fs.ValidPath(h.Name) || strings.Contains(h.Name, "/") || h.Typeflag != tar.TypeReg {
			t.Fatalf("%s: unexpected entry %q", in, h.Name)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, h.Name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

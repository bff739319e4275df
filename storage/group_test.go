package storage

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dynakv/dynakv/record"
)

// holdFirstLeader makes the store's first group leader wait (up to 10s) until
// want writers are queued behind it.
func holdFirstLeader(s *Store, want int) {
	var once sync.Once
	s.gc.testHookLead = func(queued func() int) {
		once.Do(func() {
			deadline := time.Now().Add(10 * time.Second)
			for queued() < want && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
		})
	}
}

// TestGroupCommitMergesWriters holds the first leader until every other writer
// is queued behind it, so the rest form one group: every write must be stored,
// each caller must get its own result, and the counters must show the groups.
func TestGroupCommitMergesWriters(t *testing.T) {
	for _, mode := range []SyncMode{SyncInterval, SyncAlways} {
		t.Run(string(mode), func(t *testing.T) {
			s := open(t, Config{Dir: t.TempDir(), Partitions: 16, Sync: mode})
			const writers = 40
			holdFirstLeader(s, writers-1)
			var wg sync.WaitGroup
			errs := make([]error, writers)
			for i := range writers {
				wg.Go(func() {
					_, errs[i] = s.Update([]byte(fmt.Sprintf("k%d", i)), func(record.Record, bool) (record.Record, error) {
						return rec(val(fmt.Sprintf("v%d", i), 0)), nil
					})
				})
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("writer %d: %v", i, err)
				}
			}
			for i := range writers {
				r, ok := mustGet(t, s, fmt.Sprintf("k%d", i))
				if !ok || string(r.Str.Siblings()[0].Data) != fmt.Sprintf("v%d", i) {
					t.Fatalf("k%d = %v, %v", i, r, ok)
				}
			}
			st := s.CommitStats()
			// The first leader waited for every other writer, so all went in its group.
			if st.Commits != writers || st.Groups != 1 {
				t.Fatalf("CommitStats = %+v, want %d commits in 1 group", st, writers)
			}
			if s.Count() != writers {
				t.Fatalf("Count = %d", s.Count())
			}
		})
	}
}

// TestGroupCommitSurvivesReopen checks that grouped writes reached the WAL: a
// store reopened after many concurrent writers has every record.
func TestGroupCommitSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, Partitions: 16, Logger: quietLogger(), ReapInterval: time.Hour}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const writers, perWriter = 16, 50
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range perWriter {
				k := fmt.Sprintf("g%d-%d", g, i)
				if _, err := s.Update([]byte(k), func(record.Record, bool) (record.Record, error) { return rec(val(k, 0)), nil }); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if st := s.CommitStats(); st.Commits != writers*perWriter+1 || st.Groups == 0 || st.Groups > st.Commits {
		t.Fatalf("CommitStats = %+v", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, cfg)
	if got := s.Count(); got != writers*perWriter {
		t.Fatalf("Count after reopen = %d, want %d", got, writers*perWriter)
	}
	for g := range writers {
		for i := range perWriter {
			k := fmt.Sprintf("g%d-%d", g, i)
			if r, ok := mustGet(t, s, k); !ok || string(r.Str.Siblings()[0].Data) != k {
				t.Fatalf("%s = %v, %v", k, r, ok)
			}
		}
	}
}

// TestGroupCommitLimits checks that a group stops at maxGroupWrites: with more
// writers queued than one group takes, the rest go in a later group.
func TestGroupCommitLimits(t *testing.T) {
	s := openMem(t, Config{Partitions: 16})
	writers := maxGroupWrites + 10
	holdFirstLeader(s, writers-1)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			put(t, s, fmt.Sprintf("k%d", i), rec(val("v", 0)))
		})
	}
	wg.Wait()
	st := s.CommitStats()
	if st.Commits != int64(writers) || st.Groups < 2 {
		t.Fatalf("CommitStats = %+v, want %d commits in 2 or more groups", st, writers)
	}
	if s.Count() != int64(writers) {
		t.Fatalf("Count = %d", s.Count())
	}
}

// TestGroupCommitMixed groups writes, deletes and bare WAL syncs together, then a
// group of syncs alone (committed as a WAL sync with nothing to write).
func TestGroupCommitMixed(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, Partitions: 16, Logger: quietLogger(), ReapInterval: time.Hour}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		put(t, s, fmt.Sprintf("del%d", i), rec(val("v", 0)))
	}
	before := s.CommitStats()
	const sets, dels, syncs = 10, 10, 5
	holdFirstLeader(s, sets+dels+syncs-1)
	var wg sync.WaitGroup
	errs := make(chan error, sets+dels+syncs)
	for i := range sets {
		wg.Go(func() {
			_, err := s.Update([]byte(fmt.Sprintf("set%d", i)), func(record.Record, bool) (record.Record, error) { return rec(val("new", 0)), nil })
			errs <- err
		})
	}
	for i := range dels {
		wg.Go(func() {
			_, err := s.Update([]byte(fmt.Sprintf("del%d", i)), func(record.Record, bool) (record.Record, error) { return record.Record{}, nil })
			errs <- err
		})
	}
	for range syncs {
		wg.Go(func() { errs <- s.Sync() })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if st := s.CommitStats(); st.Commits-before.Commits != sets+dels+syncs || st.Groups-before.Groups != 1 {
		t.Fatalf("CommitStats %+v after %+v, want %d commits in 1 group", st, before, sets+dels+syncs)
	}
	// A group of syncs only.
	before = s.CommitStats()
	holdFirstLeader(s, syncs-1)
	for range syncs {
		wg.Go(func() {
			if err := s.Sync(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if st := s.CommitStats(); st.Commits-before.Commits != syncs || st.Groups-before.Groups != 1 {
		t.Fatalf("CommitStats %+v after %+v, want %d syncs in 1 group", st, before, syncs)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, cfg)
	if s.Count() != sets {
		t.Fatalf("Count after reopen = %d, want %d", s.Count(), sets)
	}
	for i := range sets {
		if _, ok := mustGet(t, s, fmt.Sprintf("set%d", i)); !ok {
			t.Fatalf("set%d lost", i)
		}
		if _, ok := mustGet(t, s, fmt.Sprintf("del%d", i)); ok {
			t.Fatalf("del%d still there", i)
		}
	}
}

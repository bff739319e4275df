package storage

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/dynakv/dynakv/record"
)

func setTo(r record.Record) UpdateFunc {
	return func(record.Record, bool) (record.Record, error) { return r, nil }
}

// TestUpdateBatch: every write of a batch is applied as Update would, its
// outcome reported per key, and the changes are one synced commit; the indexes,
// counts, cache and observer follow; the batch survives a reopen.
func TestUpdateBatch(t *testing.T) {
	dir := t.TempDir()
	obs := &recordingObserver{}
	s := open(t, Config{Dir: dir, Partitions: 16, Observer: obs})
	put(t, s, "same", rec(val("x", 0)))
	put(t, s, "gone", rec(val("y", 0)))
	before, countBefore := s.CommitStats(), s.Count()
	obs.mu.Lock()
	obs.changes = nil
	obs.mu.Unlock()
	errBoom := errors.New("boom")
	keys := [][]byte{[]byte("a"), []byte("same"), []byte("boom"), []byte("gone"), []byte("exp"), []byte("tomb")}
	errs := s.UpdateBatch(keys, []UpdateFunc{
		setTo(rec(val("va", 0))),
		func(record.Record, bool) (record.Record, error) { return record.Record{}, ErrNoChange },
		func(record.Record, bool) (record.Record, error) { return record.Record{}, errBoom },
		setTo(record.Record{}), // delete
		setTo(rec(val("ve", 1_700_000_000_000))),
		setTo(rec(tomb())),
	})
	for i, want := range []error{nil, nil, errBoom, nil, nil, nil} {
		if !errors.Is(errs[i], want) || (want == nil && errs[i] != nil) {
			t.Errorf("write %d (%s): %v, want %v", i, keys[i], errs[i], want)
		}
	}
	if st := s.CommitStats(); st.Commits-before.Commits != 1 {
		t.Errorf("%d synced commits for one batch; want 1", st.Commits-before.Commits)
	}
	// a and exp are new live records, gone was deleted, tomb holds no value.
	if got := s.Count(); got != countBefore+1 {
		t.Errorf("Count = %d, want %d", got, countBefore+1)
	}
	if got := countExpiryEntries(t, s); got != 1 {
		t.Errorf("%d expiry index entries, want 1 (exp)", got)
	}
	obs.mu.Lock()
	changes := slices.Clone(obs.changes)
	obs.mu.Unlock()
	for _, want := range []string{"a:0>", "gone:", "exp:0>", "tomb:0>"} {
		if !slices.ContainsFunc(changes, func(c string) bool { return len(c) >= len(want) && c[:len(want)] == want }) {
			t.Errorf("observer missed %q in %v", want, changes)
		}
	}
	if slices.ContainsFunc(changes, func(c string) bool { return c[:4] == "same" || c[:4] == "boom" }) {
		t.Errorf("observer told of writes that changed nothing: %v", changes)
	}
	check := func(s *Store) {
		t.Helper()
		for k, want := range map[string]string{"a": "va", "same": "x", "exp": "ve"} {
			if r, ok := mustGet(t, s, k); !ok || string(r.Str.Siblings()[0].Data) != want {
				t.Errorf("%s = %v, %v; want %s", k, r, ok, want)
			}
		}
		for _, k := range []string{"boom", "gone"} {
			if r, ok := mustGet(t, s, k); ok {
				t.Errorf("%s = %v; want none", k, r)
			}
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, Config{Dir: dir, Partitions: 16})
	check(s)
}

// TestUpdateBatchRepeatedKey: a later write of a key in the batch sees the
// earlier ones' result (also when an earlier one failed or changed nothing), and
// the key is written once, with the last result, in the batch's one commit.
func TestUpdateBatchRepeatedKey(t *testing.T) {
	obs := &recordingObserver{}
	s := open(t, Config{Dir: t.TempDir(), Partitions: 16, Observer: obs})
	put(t, s, "e", rec(val("10", 0)))
	obs.mu.Lock()
	obs.changes = nil
	obs.mu.Unlock()
	before := s.CommitStats()
	errBoom := errors.New("boom")
	boom := func(record.Record, bool) (record.Record, error) { return record.Record{}, errBoom }
	noChange := func(record.Record, bool) (record.Record, error) { return record.Record{}, ErrNoChange }
	del := setTo(record.Record{})
	keys := [][]byte{[]byte("c"), []byte("d"), []byte("c"), []byte("e"), []byte("c"), []byte("e"), []byte("e"), []byte("d"), []byte("d")}
	fns := []UpdateFunc{incr, incr, incr, boom, incr, noChange, incr, del, incr}
	errs := s.UpdateBatch(keys, fns)
	for i, err := range errs {
		if want := i == 3; (err != nil) != want || want && !errors.Is(err, errBoom) {
			t.Errorf("write %d (%s): %v", i, keys[i], err)
		}
	}
	// c: 3 increments; d: 1, deleted, then 1 again; e: 10, a failure and no
	// change, then 11.
	for k, want := range map[string]string{"c": "3", "d": "1", "e": "11"} {
		if r, _ := mustGet(t, s, k); string(r.Str.Siblings()[0].Data) != want {
			t.Errorf("%s = %v, want %s", k, r, want)
		}
	}
	if st := s.CommitStats(); st.Commits-before.Commits != 1 {
		t.Errorf("%d synced commits; want 1", st.Commits-before.Commits)
	}
	obs.mu.Lock()
	changes := slices.Clone(obs.changes)
	obs.mu.Unlock()
	slices.Sort(changes)
	// One change per key, from what was stored before the batch.
	if want := []string{"c:0>13", "d:0>13", "e:14>14"}; !slices.Equal(changes, want) {
		t.Errorf("observer heard %v; want %v", changes, want)
	}
	if s.Count() != 3 {
		t.Errorf("Count = %d, want 3", s.Count())
	}
}

// incr counts in a record's only value.
func incr(cur record.Record, found bool) (record.Record, error) {
	n := 0
	if found {
		var err error
		if n, err = strconv.Atoi(string(cur.Str.Siblings()[0].Data)); err != nil {
			return record.Record{}, err
		}
	}
	return rec(val(strconv.Itoa(n+1), 0)), nil
}

// TestUpdateBatchNothingChangedStillSyncs: a batch in which no record changes
// still syncs the WAL (what it read may be an unsynced write of this node's).
func TestUpdateBatchNothingChangedStillSyncs(t *testing.T) {
	s := open(t, Config{Dir: t.TempDir(), Partitions: 16})
	if _, err := s.UpdateNoSync([]byte("k"), setTo(rec(val("v", 0)))); err != nil {
		t.Fatal(err)
	}
	before := s.CommitStats()
	noChange := func(record.Record, bool) (record.Record, error) { return record.Record{}, ErrNoChange }
	if errs := s.UpdateBatch([][]byte{[]byte("k")}, []UpdateFunc{noChange}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if st := s.CommitStats(); st.Commits-before.Commits != 1 {
		t.Errorf("%d synced commits; want 1 (the sync)", st.Commits-before.Commits)
	}
}

func TestUpdateBatchErrors(t *testing.T) {
	s := openMem(t, Config{Partitions: 16})
	errs := s.UpdateBatch([][]byte{[]byte("a"), []byte("b")}, []UpdateFunc{incr})
	if errs[0] == nil || errs[1] == nil {
		t.Errorf("mismatched lengths: %v", errs)
	}
	if r, ok := mustGet(t, s, "a"); ok {
		t.Errorf("a = %v after a refused batch", r)
	}
	if len(s.UpdateBatch(nil, nil)) != 0 {
		t.Error("an empty batch has outcomes")
	}
	s.Close()
	for i, err := range s.UpdateBatch([][]byte{[]byte("a")}, []UpdateFunc{incr}) {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("write %d after Close: %v, want ErrClosed", i, err)
		}
	}
}

// TestUpdateBatchConcurrent runs batches over shared keys in opposite orders
// against single Updates of the same keys: no deadlock, no lost increment, the
// counts exact. Run it with -race.
func TestUpdateBatchConcurrent(t *testing.T) {
	s := open(t, Config{Dir: t.TempDir(), Partitions: 16})
	const nkeys, rounds = 40, 50
	keys := make([][]byte, nkeys)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "key-%d", i)
	}
	rev := slices.Clone(keys)
	slices.Reverse(rev)
	fns := slices.Repeat([]UpdateFunc{incr}, nkeys)
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	batcher := func(ks [][]byte) {
		for range rounds {
			for i, err := range s.UpdateBatch(ks, fns) {
				if err != nil {
					errc <- fmt.Errorf("batch write %d: %w", i, err)
					return
				}
			}
		}
	}
	wg.Go(func() { batcher(keys) })
	wg.Go(func() { batcher(rev) })
	wg.Go(func() {
		for range rounds {
			for _, k := range keys {
				if _, err := s.Update(k, incr); err != nil {
					errc <- err
					return
				}
			}
		}
	})
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	for _, k := range keys {
		r, _ := mustGet(t, s, string(k))
		if got := string(r.Str.Siblings()[0].Data); got != strconv.Itoa(3*rounds) {
			t.Fatalf("%s = %s, want %d", k, got, 3*rounds)
		}
	}
	if s.Count() != nkeys {
		t.Fatalf("Count = %d, want %d", s.Count(), nkeys)
	}
}

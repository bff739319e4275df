package storage

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/vclock"
)

func putHint(t testing.TB, s *Store, owner, key string, r record.Record) {
	t.Helper()
	if _, err := s.UpdateHint(owner, []byte(key), func(record.Record, bool) (record.Record, error) { return r, nil }); err != nil {
		t.Fatalf("UpdateHint(%q, %q): %v", owner, key, err)
	}
}

func mustGetHint(t testing.TB, s *Store, owner, key string) (record.Record, bool) {
	t.Helper()
	r, found, err := s.GetHint(owner, []byte(key))
	if err != nil {
		t.Fatalf("GetHint(%q, %q): %v", owner, key, err)
	}
	return r, found
}

// scanHintKeys returns the keys ScanHints visits for owner from from, checking each
// record against GetHint.
func scanHintKeys(t testing.TB, s *Store, owner string, from []byte) []string {
	t.Helper()
	var keys []string
	var recs []record.Record
	err := s.ScanHints(owner, from, func(key []byte, r record.Record) bool {
		keys = append(keys, string(key))
		recs = append(recs, r)
		return true
	})
	if err != nil {
		t.Fatalf("ScanHints(%q, %q): %v", owner, from, err)
	}
	for i, k := range keys {
		if got, found := mustGetHint(t, s, owner, k); !found || !sameRecord(got, recs[i]) {
			t.Fatalf("ScanHints(%q) gave %q a record GetHint does not return", owner, k)
		}
	}
	return keys
}

// rawHintKeys counts the hint space directly, bypassing every API.
func rawHintKeys(t testing.TB, s *Store) int64 {
	t.Helper()
	it, err := s.db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var n int64
	for it.First(); it.Valid(); it.Next() {
		if it.Key()[0] == spaceHint {
			n++
		}
	}
	return n
}

// dvv builds the record a coordinator actor makes for a write of data on top of
// local, superseding what local holds.
func dvv(local record.Record, actor, data string) record.Record {
	return record.String(vclock.Update(local.Str, local.Str.Join(), actor, val(data, 0), 1_700_000_000_000, 1))
}

func TestHintKeyLayout(t *testing.T) {
	long := strings.Repeat("o", 255)
	for _, tc := range []struct {
		owner string
		key   string
	}{
		{"a", ""},
		{"a", "key"},
		{"ab", "c"},
		{"\xff", "\xff\xff"},
		{"\x00", "\x00"},
		{long, "k"},
	} {
		hk := hintKey(nil, tc.owner, []byte(tc.key))
		owner, key, err := parseHintKey(hk)
		if err != nil || owner != tc.owner || string(key) != tc.key {
			t.Errorf("parseHintKey(hintKey(%q, %q)) = %q, %q, %v", tc.owner, tc.key, owner, key, err)
		}
		lo, hi := hintBounds(tc.owner)
		if bytes.Compare(lo, hk) > 0 || bytes.Compare(hk, hi) >= 0 {
			t.Errorf("hintBounds(%q) = [%x, %x) does not hold %x", tc.owner, lo, hi, hk)
		}
	}
	// Owner "a" with a key starting with "b" and owner "ab" do not share a range.
	ab := hintKey(nil, "ab", []byte("x"))
	if lo, hi := hintBounds("a"); bytes.Compare(lo, ab) <= 0 && bytes.Compare(ab, hi) < 0 {
		t.Fatal(`owner "ab"'s hint falls in owner "a"'s range`)
	}
	if bytes.Equal(hintKey(nil, "a", []byte("bx")), ab) {
		t.Fatal(`owner "a" key "bx" and owner "ab" key "x" collide`)
	}
	// The hint space sits between the data and the expiry/meta spaces.
	_, dataEnd := partitionBounds(0xffff)
	if h := hintKey(nil, "\x00", nil); bytes.Compare(h, dataEnd) < 0 || h[0] >= spaceExpiry || h[0] >= spaceMeta {
		t.Fatalf("hint key %x overlaps another space", h)
	}
	for _, tc := range []struct {
		prefix, want []byte
	}{
		{[]byte{spaceHint, 1, 'a'}, []byte{spaceHint, 1, 'b'}},
		{[]byte{spaceHint, 1, 0xff}, []byte{spaceHint, 2}},
		{[]byte{spaceHint, 2, 'a', 0xff}, []byte{spaceHint, 2, 'b'}},
	} {
		if got := prefixEnd(tc.prefix); !bytes.Equal(got, tc.want) {
			t.Errorf("prefixEnd(%x) = %x, want %x", tc.prefix, got, tc.want)
		}
	}
	for _, k := range [][]byte{
		nil,
		{spaceHint},
		{spaceHint, 0},
		{spaceHint, 0, 'k'},      // empty owner
		{spaceHint, 3, 'a', 'b'}, // owner shorter than its length byte
		{spaceData, 1, 'a', 'k'}, // another space
		append([]byte{spaceMeta}, 1, 'a'),
	} {
		if _, _, err := parseHintKey(k); err == nil {
			t.Errorf("parseHintKey(%x) accepted a malformed key", k)
		}
	}
}

func TestHintRoundTrip(t *testing.T) {
	owners := []string{"a", "ab", "b", "node-1", "\xff", strings.Repeat("z", 255)}
	keys := []string{"", "a", "b", "ba", "k1", "k10", "k2", "\x00", "\xff"}
	s := openMem(t, Config{Partitions: 8})
	want := map[string]map[string]record.Record{}
	for i, owner := range owners {
		want[owner] = map[string]record.Record{}
		// Each owner holds a different subset of the keys, with its own values.
		for j, k := range keys {
			if (i+j)%3 == 0 {
				continue
			}
			r := dvv(record.Record{}, "n1", owner+"/"+k)
			putHint(t, s, owner, k, r)
			want[owner][k] = r
		}
	}
	if n := s.HintCount(); n != rawHintKeys(t, s) {
		t.Fatalf("HintCount = %d, the hint space holds %d", n, rawHintKeys(t, s))
	}
	for _, owner := range owners {
		t.Run(fmt.Sprintf("owner %q", owner), func(t *testing.T) {
			for _, k := range keys {
				got, found := mustGetHint(t, s, owner, k)
				w, ok := want[owner][k]
				if found != ok || (ok && !sameRecord(got, w)) {
					t.Fatalf("GetHint(%q, %q) = %+v, %v; want %+v, %v", owner, k, got, found, w, ok)
				}
			}
			var wantKeys []string
			for k := range want[owner] {
				wantKeys = append(wantKeys, k)
			}
			slices.Sort(wantKeys)
			got := scanHintKeys(t, s, owner, nil)
			if !slices.Equal(got, wantKeys) {
				t.Fatalf("ScanHints(%q) = %q, want %q (key order, this owner only)", owner, got, wantKeys)
			}
			if all := scanHintKeys(t, s, owner, []byte{}); !slices.Equal(all, got) {
				t.Fatalf("ScanHints from an empty key = %q, want %q", all, got)
			}
			for i, k := range got {
				// Resuming from a key includes it; from just past it excludes it.
				if suffix := scanHintKeys(t, s, owner, []byte(k)); !slices.Equal(suffix, got[i:]) {
					t.Fatalf("ScanHints from %q = %q, want %q", k, suffix, got[i:])
				}
				if suffix := scanHintKeys(t, s, owner, []byte(k+"\x00")); !slices.Equal(suffix, got[i+1:]) {
					t.Fatalf("ScanHints from %q+0 = %q, want %q", k, suffix, got[i+1:])
				}
			}
			if rest := scanHintKeys(t, s, owner, []byte("\xff\xff")); len(rest) != 0 {
				t.Fatalf("ScanHints past the last key = %q", rest)
			}
			// Stopping early.
			calls := 0
			if err := s.ScanHints(owner, nil, func([]byte, record.Record) bool { calls++; return calls < 2 }); err != nil {
				t.Fatal(err)
			}
			if calls != min(2, len(got)) {
				t.Fatalf("fn called %d times after returning false on the second", calls)
			}
		})
	}
	// An owner nobody stored hints for.
	if got := scanHintKeys(t, s, "c", nil); len(got) != 0 {
		t.Fatalf("ScanHints(c) = %q", got)
	}
	if _, found := mustGetHint(t, s, "c", "a"); found {
		t.Fatal("GetHint found a hint of an owner without hints")
	}
}

func TestUpdateHint(t *testing.T) {
	errBoom := errors.New("boom")
	v1, v2 := dvv(record.Record{}, "n1", "one"), dvv(record.Record{}, "n2", "two")
	tests := []struct {
		name      string
		initial   *record.Record // nil: no hint
		fn        UpdateFunc
		wantErr   error
		wantRet   record.Record
		wantFound bool
		wantRec   record.Record
		wantCount int64
	}{
		{
			name:    "create",
			fn:      func(cur record.Record, found bool) (record.Record, error) { return v1, nil },
			wantRet: v1, wantFound: true, wantRec: v1, wantCount: 1,
		},
		{
			name:    "merge into the current hint",
			initial: &v1,
			fn: func(cur record.Record, found bool) (record.Record, error) {
				if !found || !sameRecord(cur, v1) {
					return record.Record{}, fmt.Errorf("fn saw %+v, %v", cur, found)
				}
				return record.String(vclock.Sync(cur.Str, v2.Str)), nil
			},
			wantRet: record.String(vclock.Sync(v1.Str, v2.Str)), wantFound: true, wantRec: record.String(vclock.Sync(v1.Str, v2.Str)), wantCount: 1,
		},
		{
			name:    "ErrNoChange leaves the hint",
			initial: &v1,
			fn:      func(record.Record, bool) (record.Record, error) { return v2, ErrNoChange },
			wantRet: v1, wantFound: true, wantRec: v1, wantCount: 1,
		},
		{
			name: "ErrNoChange without a hint",
			fn:   func(record.Record, bool) (record.Record, error) { return v2, ErrNoChange },
		},
		{
			name:    "empty result deletes",
			initial: &v1,
			fn:      func(record.Record, bool) (record.Record, error) { return record.Record{}, nil },
		},
		{
			name: "empty result without a hint",
			fn:   func(record.Record, bool) (record.Record, error) { return record.Record{}, nil },
		},
		{
			name:    "error aborts",
			initial: &v1,
			fn:      func(record.Record, bool) (record.Record, error) { return v2, errBoom },
			wantErr: errBoom, wantFound: true, wantRec: v1, wantCount: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openMem(t, Config{Partitions: 4})
			if tt.initial != nil {
				putHint(t, s, "owner", "k", *tt.initial)
			}
			got, err := s.UpdateHint("owner", []byte("k"), tt.fn)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("UpdateHint err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && !sameRecord(got, tt.wantRet) {
				t.Fatalf("UpdateHint = %+v, want %+v", got, tt.wantRet)
			}
			r, found := mustGetHint(t, s, "owner", "k")
			if found != tt.wantFound || (found && !sameRecord(r, tt.wantRec)) {
				t.Fatalf("GetHint = %+v, %v; want %+v, %v", r, found, tt.wantRec, tt.wantFound)
			}
			if n := s.HintCount(); n != tt.wantCount {
				t.Fatalf("HintCount = %d, want %d", n, tt.wantCount)
			}
			if m := s.Metrics(); m.Hints != tt.wantCount {
				t.Fatalf("Metrics().Hints = %d, want %d", m.Hints, tt.wantCount)
			}
			// A hint is not the fallback's own record of the key.
			if _, found := mustGet(t, s, "k"); found {
				t.Fatal("a hint is visible through Get")
			}
		})
	}
}

func TestDeleteHint(t *testing.T) {
	base := dvv(record.Record{}, "n1", "v1")
	overwrite := dvv(base, "n2", "v2")                                                      // a causal successor of base
	concurrent := record.String(vclock.Sync(base.Str, dvv(record.Record{}, "n3", "w").Str)) // base plus a sibling
	tests := []struct {
		name      string
		stored    *record.Record // nil: no hint
		merge     *record.Record // merged into the hint after it was read for delivery
		delivered record.Record
		wantDel   bool
		wantRec   record.Record // what remains when not deleted
	}{
		{name: "acknowledged as stored", stored: &base, delivered: base, wantDel: true},
		{name: "merged with an overwrite in flight", stored: &base, merge: &overwrite, delivered: base, wantRec: record.String(vclock.Sync(base.Str, overwrite.Str))},
		{name: "merged with a sibling in flight", stored: &base, merge: &concurrent, delivered: base, wantRec: concurrent},
		{name: "merged record acknowledged", stored: &concurrent, delivered: concurrent, wantDel: true},
		{name: "a different record", stored: &base, delivered: overwrite, wantRec: base},
		{name: "an empty record", stored: &base, delivered: record.Record{}, wantRec: base},
		{name: "no hint", delivered: base},
		{name: "idempotent merge changes nothing", stored: &base, merge: &base, delivered: base, wantDel: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openMem(t, Config{Partitions: 4})
			putHint(t, s, "other", "k", base) // another owner's hint of the key is never touched
			if tt.stored != nil {
				putHint(t, s, "owner", "k", *tt.stored)
			}
			if tt.merge != nil {
				if _, err := s.UpdateHint("owner", []byte("k"), func(cur record.Record, _ bool) (record.Record, error) {
					return record.String(vclock.Sync(cur.Str, tt.merge.Str)), nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			before := s.HintCount()
			deleted, err := s.DeleteHint("owner", []byte("k"), tt.delivered)
			if err != nil || deleted != tt.wantDel {
				t.Fatalf("DeleteHint = %v, %v; want %v", deleted, err, tt.wantDel)
			}
			r, found := mustGetHint(t, s, "owner", "k")
			switch {
			case tt.wantDel && found:
				t.Fatal("deleted hint still found")
			case !tt.wantDel && tt.stored != nil && (!found || !sameRecord(r, tt.wantRec)):
				t.Fatalf("kept hint = %+v, %v; want %+v", r, found, tt.wantRec)
			}
			wantCount := before
			if tt.wantDel {
				wantCount--
			}
			if n := s.HintCount(); n != wantCount || n != rawHintKeys(t, s) {
				t.Fatalf("HintCount = %d, want %d (raw %d)", n, wantCount, rawHintKeys(t, s))
			}
			if _, found := mustGetHint(t, s, "other", "k"); !found {
				t.Fatal("DeleteHint touched another owner's hint")
			}
		})
	}
}

// TestReplayLoop runs the handoff pattern: scan an owner's hints, deliver each, and
// delete it with the delivered record from inside the scan callback, while a writer
// keeps merging into some hints. Exactly the hints that changed after delivery stay.
func TestReplayLoop(t *testing.T) {
	s := openMem(t, Config{Partitions: 4})
	for i := range 100 {
		putHint(t, s, "owner", fmt.Sprintf("k%03d", i), dvv(record.Record{}, "n1", "v"))
	}
	var changed []string
	err := s.ScanHints("owner", nil, func(key []byte, r record.Record) bool {
		delivered := r // what the owner acknowledged
		if key[len(key)-1]%3 == 0 {
			// A write merged into the hint while it was on the wire.
			if _, err := s.UpdateHint("owner", key, func(cur record.Record, _ bool) (record.Record, error) {
				return dvv(cur, "n2", "newer"), nil
			}); err != nil {
				t.Error(err)
				return false
			}
			changed = append(changed, string(key))
		}
		if _, err := s.DeleteHint("owner", key, delivered); err != nil {
			t.Error(err)
			return false
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := scanHintKeys(t, s, "owner", nil); !slices.Equal(got, changed) {
		t.Fatalf("hints left after replay = %q, want the ones merged in flight %q", got, changed)
	}
	if s.HintCount() != int64(len(changed)) {
		t.Fatalf("HintCount = %d, want %d", s.HintCount(), len(changed))
	}
}

func TestHintOwners(t *testing.T) {
	s := openMem(t, Config{Partitions: 4})
	owners := func() []string {
		t.Helper()
		got, err := s.HintOwners()
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := owners(); len(got) != 0 {
		t.Fatalf("HintOwners of an empty store = %q", got)
	}
	long := strings.Repeat("z", 255)
	all := []string{"b", "a", "ab", "\xff", "node-10", "node-9", long, "aa\xff"}
	for i, o := range all {
		for j := range 50 + i { // many hints each: HintOwners lists each owner once
			putHint(t, s, o, fmt.Sprint("key", j), dvv(record.Record{}, "n1", "v"))
		}
	}
	// Data and metadata are not owners.
	put(t, s, "data", rec(val("v", 0)))
	if err := s.PutMeta("meta", []byte("x")); err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(all)
	slices.Sort(want)
	if got := owners(); !slices.Equal(got, want) {
		t.Fatalf("HintOwners = %q, want %q", got, want)
	}
	// An owner whose hints were all delivered is no longer listed.
	if err := s.ScanHints("ab", nil, func(key []byte, r record.Record) bool {
		if _, err := s.DeleteHint("ab", key, r); err != nil {
			t.Fatal(err)
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	want = slices.DeleteFunc(want, func(o string) bool { return o == "ab" })
	if got := owners(); !slices.Equal(got, want) {
		t.Fatalf("HintOwners after delivering ab = %q, want %q", got, want)
	}
	if err := s.DropHints(long); err != nil {
		t.Fatal(err)
	}
	want = slices.DeleteFunc(want, func(o string) bool { return o == long })
	if got := owners(); !slices.Equal(got, want) {
		t.Fatalf("HintOwners after DropHints = %q, want %q", got, want)
	}
}

func TestHintCountConcurrent(t *testing.T) {
	s := openMem(t, Config{Partitions: 8})
	owners := []string{"a", "ab", "b"}
	const goroutines, ops, keys = 16, 400, 24
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 42))
			for i := range ops {
				owner := owners[rng.IntN(len(owners))]
				key := []byte(fmt.Sprint("k", rng.IntN(keys)))
				var err error
				switch op := rng.IntN(100); {
				case op < 40: // a write lands as a hint
					_, err = s.UpdateHint(owner, key, func(cur record.Record, _ bool) (record.Record, error) {
						return dvv(cur, fmt.Sprint("g", g), fmt.Sprint(i)), nil
					})
				case op < 50: // a hint read back and emptied
					_, err = s.UpdateHint(owner, key, func(record.Record, bool) (record.Record, error) { return record.Record{}, nil })
				case op < 55:
					_, err = s.UpdateHint(owner, key, func(record.Record, bool) (record.Record, error) { return record.Record{}, ErrNoChange })
				case op < 85: // a delivery, racing the writers
					var r record.Record
					var found bool
					if r, found, err = s.GetHint(owner, key); err == nil && found {
						_, err = s.DeleteHint(owner, key, r)
					}
				case op < 98: // a replay pass
					err = s.ScanHints(owner, nil, func(key []byte, r record.Record) bool {
						_, derr := s.DeleteHint(owner, key, r)
						return derr == nil && rng.IntN(4) != 0
					})
				default:
					err = s.DropHints(owner)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() { // readers of the count and owners meanwhile
		for range 200 {
			if _, err := s.HintOwners(); err != nil {
				t.Error(err)
				return
			}
			if n := s.HintCount(); n < 0 || n > int64(len(owners)*keys) {
				t.Errorf("HintCount = %d out of range", n)
				return
			}
		}
	})
	wg.Wait()
	var scanned int64
	gotOwners, err := s.HintOwners()
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range gotOwners {
		scanned += int64(len(scanHintKeys(t, s, o, nil)))
	}
	if n := s.HintCount(); n != scanned || n != rawHintKeys(t, s) {
		t.Fatalf("HintCount = %d, ScanHints found %d, the hint space holds %d", n, scanned, rawHintKeys(t, s))
	}
	if s.Count() != 0 {
		t.Fatalf("hints counted as records: Count = %d", s.Count())
	}
}

func TestHintsAfterReopen(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, Partitions: 8, Sync: SyncNone}
	s := open(t, cfg)
	want := map[string]map[string]record.Record{"a": {}, "ab": {}, "b": {}}
	for i := range 300 {
		owner := []string{"a", "ab", "b"}[i%3]
		k := fmt.Sprintf("k%03d", i)
		r := dvv(record.Record{}, "n1", k)
		putHint(t, s, owner, k, r)
		want[owner][k] = r
	}
	for i := 0; i < 300; i += 4 { // deliver some
		owner := []string{"a", "ab", "b"}[i%3]
		k := fmt.Sprintf("k%03d", i)
		if ok, err := s.DeleteHint(owner, []byte(k), want[owner][k]); err != nil || !ok {
			t.Fatalf("DeleteHint(%q, %q) = %v, %v", owner, k, ok, err)
		}
		delete(want[owner], k)
	}
	wantCount := s.HintCount()
	if wantCount != 225 {
		t.Fatalf("HintCount = %d, want 225", wantCount)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, cfg)
	if n := s.HintCount(); n != wantCount {
		t.Fatalf("HintCount after reopen = %d, want %d", n, wantCount)
	}
	if got, err := s.HintOwners(); err != nil || !slices.Equal(got, []string{"a", "ab", "b"}) {
		t.Fatalf("HintOwners after reopen = %q, %v", got, err)
	}
	for owner, hints := range want {
		if got := scanHintKeys(t, s, owner, nil); len(got) != len(hints) {
			t.Fatalf("%q has %d hints after reopen, want %d", owner, len(got), len(hints))
		}
		for k, w := range hints {
			if r, found := mustGetHint(t, s, owner, k); !found || !sameRecord(r, w) {
				t.Fatalf("hint (%q, %q) after reopen = %+v, %v", owner, k, r, found)
			}
		}
	}
	// The reloaded count keeps moving exactly.
	if err := s.DropHints("ab"); err != nil {
		t.Fatal(err)
	}
	if n := s.HintCount(); n != wantCount-int64(len(want["ab"])) || n != rawHintKeys(t, s) {
		t.Fatalf("HintCount after DropHints = %d, raw %d", n, rawHintKeys(t, s))
	}
}

// TestHintsApartFromData: hints are invisible to everything that deals with the
// node's own records: Count, Scan, the reaper and partition drops.
func TestHintsApartFromData(t *testing.T) {
	const q = 4
	clk := newFakeClock()
	s := openMem(t, Config{Partitions: q, Now: clk.Now})
	now := clk.Millis()
	put(t, s, "own", rec(val("v", 0)))
	for i := range 20 {
		k := fmt.Sprint("k", i)
		putHint(t, s, "owner", k, rec(val("expiring", now+10)))
		putHint(t, s, "other", k, rec(val("forever", 0)))
	}
	putHint(t, s, "owner", "own", rec(tomb()))
	if s.Count() != 1 || s.Metrics().Keys != 1 {
		t.Fatalf("Count = %d, Metrics().Keys = %d; hints must not count", s.Count(), s.Metrics().Keys)
	}
	if s.HintCount() != 41 || s.Metrics().Hints != 41 {
		t.Fatalf("HintCount = %d, Metrics().Hints = %d, want 41", s.HintCount(), s.Metrics().Hints)
	}
	var scanned []string
	for p := range q {
		for _, sc := range scanAll(t, s, p, 0) {
			scanned = append(scanned, sc.key)
		}
	}
	if !slices.Equal(scanned, []string{"own"}) {
		t.Fatalf("Scan visited %q; hints must not be scanned", scanned)
	}
	if n := countExpiryEntries(t, s); n != 0 {
		t.Fatalf("%d expiry-index entries; hints must have none", n)
	}
	clk.Advance(time.Hour)
	if n, err := s.Reap(1000); err != nil || n != 0 {
		t.Fatalf("Reap = %d, %v; hints must not be reaped", n, err)
	}
	if r, found := mustGetHint(t, s, "owner", "k0"); !found || !sameRecord(r, rec(val("expiring", now+10))) {
		t.Fatal("an expired hint disappeared; the owner applies expiry, not the fallback")
	}
	for p := range q {
		if err := s.DropPartition(p); err != nil {
			t.Fatal(err)
		}
	}
	if s.HintCount() != 41 || rawHintKeys(t, s) != 41 {
		t.Fatalf("DropPartition touched hints: HintCount = %d, raw %d", s.HintCount(), rawHintKeys(t, s))
	}
	// The fallback's own record of a key and its hint of the same key are independent.
	put(t, s, "own", rec(val("mine", 0)))
	if r, _ := mustGetHint(t, s, "owner", "own"); !sameRecord(r, rec(tomb())) {
		t.Fatal("Update of a record changed the hint of the same key")
	}
}

func TestDropAllDropsHints(t *testing.T) {
	s := openMem(t, Config{Partitions: 4})
	for i := range 30 {
		put(t, s, fmt.Sprint("d", i), rec(val("v", 0)))
		putHint(t, s, fmt.Sprint("owner", i%3), fmt.Sprint("h", i), rec(val("v", 0)))
	}
	if err := s.PutMeta("node", []byte("n1")); err != nil {
		t.Fatal(err)
	}
	if err := s.DropAll(); err != nil {
		t.Fatal(err)
	}
	if s.HintCount() != 0 || rawHintKeys(t, s) != 0 || s.Metrics().Hints != 0 {
		t.Fatalf("after DropAll: HintCount = %d, raw %d", s.HintCount(), rawHintKeys(t, s))
	}
	if owners, err := s.HintOwners(); err != nil || len(owners) != 0 {
		t.Fatalf("HintOwners after DropAll = %q, %v", owners, err)
	}
	if _, found := mustGetHint(t, s, "owner0", "h0"); found {
		t.Fatal("a hint survived DropAll")
	}
	if v, ok, err := s.GetMeta("node"); err != nil || !ok || string(v) != "n1" {
		t.Fatalf("DropAll lost metadata: %q %v %v", v, ok, err)
	}
	// Counting restarts from zero.
	putHint(t, s, "owner0", "h0", rec(val("v", 0)))
	if s.HintCount() != 1 {
		t.Fatalf("HintCount after a new hint = %d", s.HintCount())
	}
}

func TestDropHints(t *testing.T) {
	s := openMem(t, Config{Partitions: 4})
	n := map[string]int{"a": 10, "ab": 7, "b": 5, "\xff": 3}
	for owner, c := range n {
		for i := range c {
			putHint(t, s, owner, fmt.Sprint("k", i), rec(val("v", 0)))
		}
	}
	put(t, s, "k0", rec(val("own", 0)))
	steps := []struct {
		drop      string
		wantLeft  []string
		wantCount int64
	}{
		{"a", []string{"ab", "b", "\xff"}, 15}, // "ab" shares a's first byte, and stays
		{"c", []string{"ab", "b", "\xff"}, 15}, // an owner without hints
		{"a", []string{"ab", "b", "\xff"}, 15}, // twice
		{"\xff", []string{"ab", "b"}, 12},      // the last owner of its length
		{"ab", []string{"b"}, 5},
		{"b", nil, 0},
	}
	for _, st := range steps {
		if err := s.DropHints(st.drop); err != nil {
			t.Fatalf("DropHints(%q): %v", st.drop, err)
		}
		owners, err := s.HintOwners()
		if err != nil || !slices.Equal(owners, st.wantLeft) {
			t.Fatalf("after DropHints(%q): HintOwners = %q, %v; want %q", st.drop, owners, err, st.wantLeft)
		}
		if s.HintCount() != st.wantCount || rawHintKeys(t, s) != st.wantCount {
			t.Fatalf("after DropHints(%q): HintCount = %d, raw %d; want %d", st.drop, s.HintCount(), rawHintKeys(t, s), st.wantCount)
		}
		for _, o := range st.wantLeft {
			if got := len(scanHintKeys(t, s, o, nil)); got != n[o] {
				t.Fatalf("after DropHints(%q): %q holds %d hints, want %d", st.drop, o, got, n[o])
			}
		}
	}
	if _, found := mustGet(t, s, "k0"); !found || s.Count() != 1 {
		t.Fatal("DropHints touched the store's own records")
	}
}

func TestHintOwnerValidation(t *testing.T) {
	s := openMem(t, Config{Partitions: 4})
	r := rec(val("v", 0))
	set := func(record.Record, bool) (record.Record, error) { return r, nil }
	calls := map[string]func(owner string) error{
		"UpdateHint": func(o string) error { _, err := s.UpdateHint(o, []byte("k"), set); return err },
		"GetHint":    func(o string) error { _, _, err := s.GetHint(o, []byte("k")); return err },
		"ScanHints": func(o string) error {
			return s.ScanHints(o, nil, func([]byte, record.Record) bool { return true })
		},
		"DeleteHint": func(o string) error { _, err := s.DeleteHint(o, []byte("k"), r); return err },
		"DropHints":  func(o string) error { return s.DropHints(o) },
	}
	tests := []struct {
		owner string
		ok    bool
	}{
		{"", false},
		{strings.Repeat("x", 256), false},
		{strings.Repeat("x", 1000), false},
		{"x", true},
		{strings.Repeat("x", 255), true},
	}
	for _, tt := range tests {
		for name, call := range calls {
			err := call(tt.owner)
			if tt.ok && err != nil {
				t.Errorf("%s(%d-byte owner) = %v", name, len(tt.owner), err)
			}
			if !tt.ok && !errors.Is(err, ErrHintOwner) {
				t.Errorf("%s(%d-byte owner) = %v, want ErrHintOwner", name, len(tt.owner), err)
			}
		}
	}
	if n := s.HintCount(); n != rawHintKeys(t, s) {
		t.Fatalf("HintCount = %d, raw %d", n, rawHintKeys(t, s))
	}
}

func TestHintsAfterClose(t *testing.T) {
	s, err := Open(Config{InMemory: true, Partitions: 4, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	r := rec(val("v", 0))
	putHint(t, s, "o", "k", r)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateHint("o", []byte("k"), func(record.Record, bool) (record.Record, error) { return r, nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("UpdateHint after Close: %v", err)
	}
	if _, _, err := s.GetHint("o", []byte("k")); !errors.Is(err, ErrClosed) {
		t.Errorf("GetHint after Close: %v", err)
	}
	if err := s.ScanHints("o", nil, func([]byte, record.Record) bool { return true }); !errors.Is(err, ErrClosed) {
		t.Errorf("ScanHints after Close: %v", err)
	}
	if _, err := s.DeleteHint("o", []byte("k"), r); !errors.Is(err, ErrClosed) {
		t.Errorf("DeleteHint after Close: %v", err)
	}
	if _, err := s.HintOwners(); !errors.Is(err, ErrClosed) {
		t.Errorf("HintOwners after Close: %v", err)
	}
	if err := s.DropHints("o"); !errors.Is(err, ErrClosed) {
		t.Errorf("DropHints after Close: %v", err)
	}
	if n := s.HintCount(); n != 1 {
		t.Errorf("HintCount after Close = %d, want the last count 1", n)
	}
}

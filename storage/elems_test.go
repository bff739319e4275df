package storage

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble"

	"github.com/dynakv/dynakv/crdt"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/ring"
	"github.com/dynakv/dynakv/tictac"
	"github.com/dynakv/dynakv/vclock"
)

// Element tests: UpdateKey and its KeyTxn, the element readers, the derived
// header fields, and the partition drops' element ranges, against a map model.

var elemTypes = []record.Type{record.Set, record.Hash}

// collHeader returns a header with a collection layer of each of typs, stamped
// ts, whose derived fields are nonsense: storage must ignore and set them.
func collHeader(ts int64, typs ...record.Type) record.Record {
	var r record.Record
	for _, t := range typs {
		r.Layers = append(r.Layers, record.Layer{Type: t, Stamp: crdt.Stamp{TS: ts, Dot: crdt.Dot{Actor: "n1", Counter: uint64(ts)}},
			Coll: &record.Coll{Ctx: crdt.ContextOf(crdt.Dot{Actor: "n1", Counter: uint64(ts)}), Len: 999, Bytes: 7, Buckets: []uint64{1, 2}}})
	}
	return r
}

// withLayer returns r with a collection layer of typ added, if it has none.
func withLayer(r record.Record, typ record.Type, ts int64) record.Record {
	if layerOf(r, typ) != nil {
		return r
	}
	r.Layers = append(slices.Clone(r.Layers), collHeader(ts, typ).Layers...)
	slices.SortFunc(r.Layers, func(a, b record.Layer) int { return cmp.Compare(a.Type, b.Type) })
	return r
}

// withoutLayer returns r without its layer of typ.
func withoutLayer(r record.Record, typ record.Type) record.Record {
	r.Layers = slices.DeleteFunc(slices.Clone(r.Layers), func(l record.Layer) bool { return l.Type == typ })
	if len(r.Layers) == 0 {
		r.Layers = nil
	}
	return r
}

// elemGen makes element fields: set members (a flag), live hash fields (a value
// register) and hash field graves (increments a removal marker observed).
type elemGen struct {
	rng *rand.Rand
	n   uint64
}

func (g *elemGen) dot() crdt.Dot {
	g.n++
	return crdt.Dot{Actor: fmt.Sprintf("n%d", g.rng.IntN(3)), Counter: g.n}
}

func (g *elemGen) field(typ record.Type) crdt.Field {
	if typ == record.Set {
		return crdt.Field{{Dot: g.dot(), Kind: crdt.KindFlag}}
	}
	if g.rng.IntN(3) > 0 {
		return crdt.Field{{Dot: g.dot(), Kind: crdt.KindReg, Data: fmt.Appendf(nil, "v%d", g.rng.IntN(1000)), TS: int64(g.n)}}
	}
	a, b := g.dot(), g.dot()
	a.Actor, b.Actor = "n1", "n2"
	return crdt.Field{
		{Dot: a, Kind: crdt.KindIncr, I: 5, Base: a.Counter},
		{Dot: b, Kind: crdt.KindReg, TS: int64(g.n), Del: true, Obs: []crdt.Total{{Dot: a, I: 5}}},
	}
}

// modelKey is the model of one key: its header as the test set it (derived fields
// not meaningful) and its elements.
type modelKey struct {
	hdr   record.Record
	elems map[record.Type]map[string]crdt.Field
}

func (m modelKey) clone() modelKey {
	out := modelKey{hdr: m.hdr, elems: map[record.Type]map[string]crdt.Field{}}
	for t, es := range m.elems {
		out.elems[t] = maps.Clone(es)
	}
	return out
}

// fits reports whether the model's elements all sit under a layer of theirs.
func (m modelKey) fits() bool {
	for t, es := range m.elems {
		if len(es) > 0 && layerOf(m.hdr, t) == nil {
			return false
		}
	}
	return true
}

// want returns the header the store must hold: the model's, with its derived
// fields recounted from the model's elements.
func (m modelKey) want(s *Store, key string) record.Record {
	r := m.hdr
	if len(r.Layers) == 0 {
		return r
	}
	r.Layers = slices.Clone(r.Layers)
	h := ring.KeyHash([]byte(key))
	for i := range r.Layers {
		l := &r.Layers[i]
		if l.Coll == nil {
			continue
		}
		c := *l.Coll
		c.Len, c.Bytes, c.Buckets = 0, 0, nil
		var bk [collBuckets]uint64
		for e, f := range m.elems[l.Type] {
			enc := f.AppendBinary(nil)
			eh := elemHash([]byte(e))
			ek := elemKey(nil, s.partition(h), h, []byte(key), l.Type, eh, []byte(e))
			if rules.Live(l.Type, f) {
				c.Len++
			}
			c.Bytes += int64(len(ek) + len(enc) + recordOverhead)
			bk[eh>>58] ^= tictac.ItemHash([]byte(e), enc)
		}
		if bk != ([collBuckets]uint64{}) {
			c.Buckets = bk[:]
		}
		l.Coll = &c
	}
	return r
}

// sortedElems returns the model's elements of typ in scan order, from ehash on.
func (m modelKey) sortedElems(typ record.Type, from uint64) []elemSeen {
	var out []elemSeen
	for e, f := range m.elems[typ] {
		if eh := elemHash([]byte(e)); eh >= from {
			out = append(out, elemSeen{eh, e, f})
		}
	}
	slices.SortFunc(out, func(a, b elemSeen) int { return cmp.Or(cmp.Compare(a.ehash, b.ehash), cmp.Compare(a.elem, b.elem)) })
	return out
}

// show formats a header with its collections' contents (%+v prints pointers).
func show(r record.Record) string {
	out := fmt.Sprintf("{Str:%v Ctx:%v", r.Str, r.Ctx)
	for _, l := range r.Layers {
		out += fmt.Sprintf(" [type %d stamp %v", l.Type, l.Stamp)
		if c := l.Coll; c != nil {
			out += fmt.Sprintf(" ctx %v len %d bytes %d buckets %x", c.Ctx, c.Len, c.Bytes, c.Buckets)
		}
		out += "]"
	}
	return out + "}"
}

type elemSeen struct {
	ehash uint64
	elem  string
	f     crdt.Field
}

func elemScan(fn func(func(uint64, []byte, crdt.Field) bool) error) ([]elemSeen, error) {
	var out []elemSeen
	err := fn(func(eh uint64, e []byte, f crdt.Field) bool {
		out = append(out, elemSeen{eh, string(e), f})
		return true
	})
	return out, err
}

func equalScans(a, b []elemSeen) bool {
	return slices.EqualFunc(a, b, func(x, y elemSeen) bool { return x.ehash == y.ehash && x.elem == y.elem && x.f.Equal(y.f) })
}

// checkKey compares the store's header and elements of key with the model.
func checkKey(t *testing.T, s *Store, key string, m modelKey, pool []string, what string) {
	t.Helper()
	got, found := mustGet(t, s, key)
	want := m.want(s, key)
	if found != !want.Empty() || !got.Equal(want) {
		t.Fatalf("%s: %s: header %s (found %v), want %s", what, key, show(got), found, show(want))
	}
	for _, typ := range elemTypes {
		all, err := elemScan(func(fn func(uint64, []byte, crdt.Field) bool) error { return s.ScanElems([]byte(key), typ, 0, 0, fn) })
		if err != nil {
			t.Fatal(err)
		}
		if w := m.sortedElems(typ, 0); !equalScans(all, w) {
			t.Fatalf("%s: %s: type %d: ScanElems %v, want %v", what, key, typ, all, w)
		}
		elems := make([][]byte, len(pool))
		for i, e := range pool {
			elems[i] = []byte(e)
		}
		hdr, hfound, fields, err := s.GetElems([]byte(key), typ, elems)
		if err != nil || hfound != found || !hdr.Equal(want) {
			t.Fatalf("%s: %s: GetElems header %s %v %v", what, key, show(hdr), hfound, err)
		}
		for i, e := range pool {
			if f := m.elems[typ][e]; !fields[i].Equal(f) {
				t.Fatalf("%s: %s: type %d: GetElems(%q) = %v, want %v", what, key, typ, e, fields[i], f)
			}
		}
	}
}

// rawElems returns the element keys Pebble holds in partition range [first, last].
func rawElems(t testing.TB, s *Store, first, last int) []string {
	t.Helper()
	lo, _ := elemBounds(first)
	_, hi := elemBounds(last)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out []string
	for it.First(); it.Valid(); it.Next() {
		out = append(out, string(it.Key()))
	}
	return out
}

// TestUpdateKeyModel runs random transactions of element puts, deletes, reads,
// scans and header changes (some refused, some discarded), record-only Updates and
// partition drops against a map model: after each, the records, the elements and
// the derived fields equal the model's; a drop leaves nothing of its partition;
// and everything survives a reopen.
func TestUpdateKeyModel(t *testing.T) {
	seed := uint64(rand.Int64())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	gen := &elemGen{rng: rng}
	dir := t.TempDir()
	cfg := Config{Dir: dir, Partitions: 4, Sync: SyncNone}
	s := open(t, cfg)
	keys := []string{"a", "b", "cart", "h:1", "h:2", ""}
	pool := []string{"", "m", "m2", "x", "yy", "zzz", "0", "1", "2", "3"}
	model := map[string]modelKey{}
	for _, k := range keys {
		model[k] = modelKey{elems: map[record.Type]map[string]crdt.Field{}}
	}
	strs := map[string]record.Record{}
	rounds := 600
	if raceEnabled || testing.Short() {
		rounds = 200
	}
	ts := int64(1)
	for round := range rounds {
		what := fmt.Sprintf("round %d", round)
		switch r := rng.IntN(20); {
		case r == 0: // a partition drop
			p := rng.IntN(cfg.Partitions)
			if err := s.DropPartition(p); err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				if s.PartitionOf([]byte(k)) == p {
					model[k] = modelKey{elems: map[record.Type]map[string]crdt.Field{}}
				}
			}
			for k := range strs {
				if s.PartitionOf([]byte(k)) == p {
					delete(strs, k)
				}
			}
			if left := rawElems(t, s, p, p); len(left) > 0 {
				t.Fatalf("%s: DropPartition(%d) left element keys %q", what, p, left)
			}
			continue
		case r == 1: // a record-only write of a string key
			k := fmt.Sprintf("s:%d", rng.IntN(5))
			v := rec(val(fmt.Sprint(round), 0))
			put(t, s, k, v)
			strs[k] = v
			continue
		case r == 2: // a record-only write of a typed key: derived fields kept
			k := keys[rng.IntN(len(keys))]
			m := model[k]
			ts++
			next := m.hdr
			if len(next.Layers) > 0 && rng.IntN(2) == 0 {
				next = withoutLayer(next, next.Layers[rng.IntN(len(next.Layers))].Type)
			} else {
				next = withLayer(next, elemTypes[rng.IntN(2)], ts)
			}
			_, err := s.Update([]byte(k), func(record.Record, bool) (record.Record, error) { return next, nil })
			m.hdr = next
			switch {
			case m.fits() && err == nil:
				model[k] = m
			case !m.fits() && errors.Is(err, ErrBadHeader):
			default:
				t.Fatalf("%s: Update(%q) dropping or adding a layer: %v (fits %v)", what, k, err, m.fits())
			}
			checkKey(t, s, k, model[k], pool, what)
			continue
		}
		k := keys[rng.IntN(len(keys))]
		m := model[k].clone()
		ending := rng.IntN(20)
		var fnErr error
		abort := errors.New("abort")
		got, err := s.UpdateKey([]byte(k), func(tx *KeyTxn) error {
			for range 1 + rng.IntN(6) {
				typ := elemTypes[rng.IntN(2)]
				elem := pool[rng.IntN(len(pool))]
				switch rng.IntN(8) {
				case 0, 1: // put, adding the layer first most of the time
					if layerOf(m.hdr, typ) == nil && rng.IntN(10) > 0 {
						ts++
						m.hdr = withLayer(m.hdr, typ, ts)
						tx.SetRecord(m.hdr)
					}
					f := gen.field(typ)
					tx.PutElem(typ, []byte(elem), f)
					if m.elems[typ] == nil {
						m.elems[typ] = map[string]crdt.Field{}
					}
					m.elems[typ][elem] = f
				case 2:
					tx.DelElem(typ, []byte(elem))
					delete(m.elems[typ], elem)
				case 3: // a put of an empty field deletes
					tx.PutElem(typ, []byte(elem), nil)
					delete(m.elems[typ], elem)
				case 4:
					f, found, err := tx.Elem(typ, []byte(elem))
					w, ok := m.elems[typ][elem]
					if err != nil || found != ok || !f.Equal(w) {
						fnErr = fmt.Errorf("Elem(%d, %q) = %v %v %v, want %v %v", typ, elem, f, found, err, w, ok)
					}
				case 5:
					from := uint64(0)
					if rng.IntN(2) == 0 {
						from = elemHash([]byte(elem)) + uint64(rng.IntN(2))
					}
					n := rng.IntN(5)
					page, err := elemScan(func(fn func(uint64, []byte, crdt.Field) bool) error { return tx.ScanElems(typ, from, n, fn) })
					w := m.sortedElems(typ, from)
					if n > 0 && len(w) > n {
						w = w[:n]
					}
					if err != nil || !equalScans(page, w) {
						fnErr = fmt.Errorf("ScanElems(%d, %x, %d) = %v %v, want %v", typ, from, n, page, err, w)
					}
				case 6: // the header as the transaction leaves it
					r, found := tx.Record()
					if w := m.want(s, k); found != !w.Empty() || m.fits() && !r.Equal(w) {
						fnErr = fmt.Errorf("Record() = %s %v, want %s", show(r), found, show(w))
					}
				case 7: // a header change: restamp, drop a layer, or delete it
					ts++
					switch {
					case len(m.hdr.Layers) == 0 || rng.IntN(4) == 0:
						m.hdr = record.Record{}
						if rng.IntN(2) == 0 {
							m.hdr.Str = rec(val("s", 0)).Str
						}
					case rng.IntN(2) == 0:
						m.hdr = withoutLayer(m.hdr, m.hdr.Layers[rng.IntN(len(m.hdr.Layers))].Type)
					default:
						m.hdr.Layers = slices.Clone(m.hdr.Layers)
						m.hdr.Layers[0].Stamp.TS = ts
					}
					tx.SetRecord(m.hdr)
				}
				if fnErr != nil {
					return fnErr
				}
			}
			switch ending {
			case 0:
				return ErrNoChange
			case 1:
				return abort
			}
			return nil
		})
		switch {
		case fnErr != nil:
			t.Fatalf("%s: %s: %v", what, k, fnErr)
		case ending == 1:
			if !errors.Is(err, abort) {
				t.Fatalf("%s: UpdateKey(%q) = %v, want the function's error", what, k, err)
			}
		case ending == 0:
			if err != nil {
				t.Fatalf("%s: UpdateKey(%q) with ErrNoChange: %v", what, k, err)
			}
		case !m.fits():
			if !errors.Is(err, ErrBadHeader) {
				t.Fatalf("%s: UpdateKey(%q) leaving elements without their layer = %v, want ErrBadHeader", what, k, err)
			}
		case err != nil:
			t.Fatalf("%s: UpdateKey(%q): %v", what, k, err)
		default:
			model[k] = m
			if w := m.want(s, k); !got.Equal(w) {
				t.Fatalf("%s: UpdateKey(%q) returned %s, want %s", what, k, show(got), show(w))
			}
		}
		checkKey(t, s, k, model[k], pool, what)
	}
	checkAll := func(s *Store, what string) {
		t.Helper()
		for _, k := range keys {
			checkKey(t, s, k, model[k], pool, what)
		}
		for k, v := range strs {
			if got, _ := mustGet(t, s, k); !got.Equal(v) {
				t.Fatalf("%s: string key %q = %+v, want %+v", what, k, got, v)
			}
		}
		n := 0
		for _, k := range keys {
			for _, es := range model[k].elems {
				n += len(es)
			}
		}
		if raw := rawElems(t, s, 0, cfg.Partitions-1); len(raw) != n {
			t.Fatalf("%s: %d element keys in Pebble, %d in the model", what, len(raw), n)
		}
	}
	checkAll(s, "end")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, cfg)
	checkAll(s, "after reopen")
	if err := s.DropAll(); err != nil {
		t.Fatal(err)
	}
	if raw := rawElems(t, s, 0, cfg.Partitions-1); len(raw) != 0 {
		t.Fatalf("DropAll left %d element keys", len(raw))
	}
}

// TestElemGenLiveness: the model's hash graves are element keys that are not
// live, so Len and the number of element keys differ.
func TestElemGenLiveness(t *testing.T) {
	g := &elemGen{rng: rand.New(rand.NewPCG(1, 2))}
	live, graves := 0, 0
	for range 100 {
		if rules.Live(record.Hash, g.field(record.Hash)) {
			live++
		} else {
			graves++
		}
	}
	if live == 0 || graves == 0 {
		t.Fatalf("hash fields: %d live, %d graves; want both", live, graves)
	}
	if !rules.Live(record.Set, g.field(record.Set)) {
		t.Fatal("a set member with an add is not live")
	}
}

// TestUpdateKeyRefusals: element operations on types without elements fail, and
// a failed transaction writes nothing.
func TestUpdateKeyRefusals(t *testing.T) {
	s := openMem(t, Config{Partitions: 4})
	key := []byte("k")
	if _, err := s.UpdateKey(key, func(tx *KeyTxn) error {
		tx.SetRecord(collHeader(1, record.Set))
		tx.PutElem(record.Set, []byte("m"), crdt.Field{{Dot: crdt.Dot{Actor: "a", Counter: 1}, Kind: crdt.KindFlag}})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	before := rawElems(t, s, 0, 3)
	for _, typ := range []record.Type{0, record.Counter, record.HLL, record.ZSet, record.List, 99} {
		var elemErr error
		_, err := s.UpdateKey(key, func(tx *KeyTxn) error {
			_, _, elemErr = tx.Elem(typ, []byte("m"))
			tx.DelElem(record.Set, []byte("m"))
			tx.PutElem(typ, []byte("m"), crdt.Field{{Dot: crdt.Dot{Actor: "a", Counter: 2}, Kind: crdt.KindFlag}})
			return nil
		})
		if !errors.Is(elemErr, ErrElemType) || !errors.Is(err, ErrElemType) {
			t.Fatalf("type %d: Elem %v, UpdateKey %v; want ErrElemType", typ, elemErr, err)
		}
		if err := s.ScanElems(key, typ, 0, 0, func(uint64, []byte, crdt.Field) bool { return true }); !errors.Is(err, ErrElemType) {
			t.Fatalf("type %d: ScanElems %v", typ, err)
		}
		if _, _, _, err := s.GetElems(key, typ, nil); !errors.Is(err, ErrElemType) {
			t.Fatalf("type %d: GetElems %v", typ, err)
		}
	}
	if got := rawElems(t, s, 0, 3); !slices.Equal(got, before) {
		t.Fatalf("failed transactions changed the elements: %q, were %q", got, before)
	}
	// Malformed headers are refused, by UpdateKey and Update alike.
	for name, bad := range map[string]record.Record{
		"out of order":         {Layers: []record.Layer{collHeader(1, record.Set).Layers[0], {Type: record.Counter}}},
		"set without its coll": {Layers: []record.Layer{{Type: record.Set}}},
		"counter with a coll":  {Layers: []record.Layer{{Type: record.Counter, Coll: &record.Coll{}}}},
		"unknown type":         {Layers: []record.Layer{{Type: 9}}},
		"no set layer":         {Layers: []record.Layer{{Type: record.Counter}}},
	} {
		if _, err := s.UpdateKey(key, func(tx *KeyTxn) error { tx.SetRecord(bad); return nil }); !errors.Is(err, ErrBadHeader) {
			t.Fatalf("UpdateKey of a header %s = %v, want ErrBadHeader", name, err)
		}
		if _, err := s.Update(key, func(record.Record, bool) (record.Record, error) { return bad, nil }); !errors.Is(err, ErrBadHeader) {
			t.Fatalf("Update of a header %s = %v, want ErrBadHeader", name, err)
		}
		ws := s.NewWriteSet()
		if _, err := ws.Update(key, func(record.Record, bool) (record.Record, error) { return bad, nil }); !errors.Is(err, ErrBadHeader) {
			t.Fatalf("WriteSet.Update of a header %s = %v, want ErrBadHeader", name, err)
		}
		if err := ws.Commit(false); err != nil {
			t.Fatal(err)
		}
	}
	// A transaction used after its function returned refuses.
	var kept *KeyTxn
	if _, err := s.UpdateKey(key, func(tx *KeyTxn) error { kept = tx; return ErrNoChange }); err != nil {
		t.Fatal(err)
	}
	if _, _, err := kept.Elem(record.Set, []byte("m")); !errors.Is(err, ErrTxnDone) {
		t.Fatalf("Elem after the function = %v, want ErrTxnDone", err)
	}
	kept.DelElem(record.Set, []byte("m"))
	if got := rawElems(t, s, 0, 3); !slices.Equal(got, before) {
		t.Fatal("a transaction wrote after its function returned")
	}
	// The header deleted with the elements still there: refused; with them gone
	// first: the key is gone.
	if _, err := s.UpdateKey(key, func(tx *KeyTxn) error { tx.SetRecord(record.Record{}); return nil }); !errors.Is(err, ErrBadHeader) {
		t.Fatalf("deleting a header over its elements = %v", err)
	}
	if _, err := s.UpdateKey(key, func(tx *KeyTxn) error {
		tx.DelElem(record.Set, []byte("m"))
		tx.SetRecord(record.Record{})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, found := mustGet(t, s, string(key)); found || len(rawElems(t, s, 0, 3)) != 0 {
		t.Fatal("the key outlived the deletion of its header and elements")
	}
}

// TestUpdateKeyStringRecord: a transaction that stages nothing writes
// nothing, and a string record through UpdateKey is stored as through Update.
func TestUpdateKeyStringRecord(t *testing.T) {
	s := openMem(t, Config{Partitions: 4})
	v := rec(val("x", 0))
	got, err := s.UpdateKey([]byte("s"), func(tx *KeyTxn) error {
		if _, found := tx.Record(); found {
			t.Error("a record before any write")
		}
		tx.SetRecord(v)
		if r, found := tx.Record(); !found || !r.Equal(v) {
			t.Errorf("Record() after SetRecord = %+v %v", r, found)
		}
		return nil
	})
	if err != nil || !got.Equal(v) {
		t.Fatalf("UpdateKey = %+v %v", got, err)
	}
	if enc, found := pebbleRecord(t, s, "s"); !found || !bytes.Equal(enc, v.Str.AppendBinary(nil)) {
		t.Fatalf("stored %x, want the string encoding", enc)
	}
	commits := s.CommitStats().Commits
	if _, err := s.UpdateKey([]byte("s"), func(tx *KeyTxn) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if s.CommitStats().Commits != commits {
		t.Fatal("a transaction that staged nothing committed")
	}
}

// TestUpdateKeyRaces runs UpdateKey on collections beside Update of other keys,
// readers and partition drops (meant for -race). Readers see a header and its
// elements at one point in time; at the end every header's derived fields are
// its elements' and no element key is without its layer.
func TestUpdateKeyRaces(t *testing.T) {
	s := openMem(t, Config{Partitions: 4})
	keys := []string{"c0", "c1", "c2", "c3"}
	pool := [][]byte{[]byte("a"), []byte("b"), []byte("c"), []byte("d"), []byte("e")}
	n := 300
	if raceEnabled || testing.Short() {
		n = 100
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 2 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			gen := &elemGen{rng: rng}
			for range n {
				k := keys[rng.IntN(len(keys))]
				typ := elemTypes[rng.IntN(2)]
				_, err := s.UpdateKey([]byte(k), func(tx *KeyTxn) error {
					r, _ := tx.Record()
					if layerOf(r, typ) == nil {
						tx.SetRecord(withLayer(r, typ, 1))
					}
					for range 3 {
						e := pool[rng.IntN(len(pool))]
						if rng.IntN(3) == 0 {
							tx.DelElem(typ, e)
						} else {
							tx.PutElem(typ, e, gen.field(typ))
						}
					}
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range n {
			k := []byte(fmt.Sprintf("s%d", i%7))
			if _, err := s.Update(k, func(record.Record, bool) (record.Record, error) { return rec(val("v", 0)), nil }); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Go(func() {
		for i := range n / 10 {
			if err := s.DropPartition(i % 4); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Go(func() {
		for i := range n {
			k := []byte(keys[i%len(keys)])
			for _, typ := range elemTypes {
				hdr, _, fields, err := s.GetElems(k, typ, pool)
				if err != nil {
					errs <- err
					return
				}
				var live int64
				for _, f := range fields {
					if f != nil && rules.Live(typ, f) {
						live++
					}
				}
				var want int64
				if l := layerOf(hdr, typ); l != nil {
					want = l.Coll.Len
				}
				if live != want {
					errs <- fmt.Errorf("GetElems(%s, %d): %d live elements, header Len %d", k, typ, live, want)
					return
				}
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := 0
	for _, k := range keys {
		m := modelKey{elems: map[record.Type]map[string]crdt.Field{}}
		hdr, _ := mustGet(t, s, k)
		m.hdr = hdr
		for _, typ := range elemTypes {
			es, err := elemScan(func(fn func(uint64, []byte, crdt.Field) bool) error { return s.ScanElems([]byte(k), typ, 0, 0, fn) })
			if err != nil {
				t.Fatal(err)
			}
			m.elems[typ] = map[string]crdt.Field{}
			for _, e := range es {
				m.elems[typ][e.elem] = e.f
			}
			total += len(es)
		}
		if !m.fits() {
			t.Fatalf("%s: element keys without their layer", k)
		}
		if w := m.want(s, k); !hdr.Equal(w) {
			t.Fatalf("%s: header %s, its elements give %s", k, show(hdr), show(w))
		}
	}
	if raw := rawElems(t, s, 0, 3); len(raw) != total {
		t.Fatalf("%d element keys, %d under the keys' layers", len(raw), total)
	}
}

// BenchmarkUpdateKeyElem measures one element write (a SADD of a member already
// in the set: its field read, a new dot written, the header rewritten with its
// derived fields) in a set of 10 and of 10^5 members, on disk without syncs: the
// cost must not grow with the set.
func BenchmarkUpdateKeyElem(b *testing.B) {
	for _, size := range []int{10, 100_000} {
		b.Run(fmt.Sprintf("elems=%d", size), func(b *testing.B) {
			s := open(b, Config{Dir: b.TempDir(), Partitions: 1024, Sync: SyncNone})
			key := []byte("bench:set")
			members := make([][]byte, size)
			for i := range members {
				members[i] = fmt.Appendf(nil, "member:%08d", i)
			}
			counter := uint64(0)
			flag := func() crdt.Field {
				counter++
				return crdt.Field{{Dot: vclock.Dot{Actor: "node-a", Counter: counter}, Kind: crdt.KindFlag}}
			}
			for lo := 0; lo < size; lo += 1000 {
				if _, err := s.UpdateKey(key, func(tx *KeyTxn) error {
					if lo == 0 {
						tx.SetRecord(collHeader(1, record.Set))
					}
					for _, m := range members[lo:min(lo+1000, size)] {
						tx.PutElem(record.Set, m, flag())
					}
					return nil
				}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				m := members[(i*7919)%size]
				if _, err := s.UpdateKey(key, func(tx *KeyTxn) error {
					if _, found, err := tx.Elem(record.Set, m); err != nil || !found {
						return fmt.Errorf("member %q: %v %v", m, found, err)
					}
					tx.PutElem(record.Set, m, flag())
					return nil
				}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

package storage

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble"

	"github.com/dynakv/dynakv/crdt"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/ring"
)

// ErrTxnDone is the error of a KeyTxn used after its KeyFunc returned.
var ErrTxnDone = errors.New("storage: key transaction used after its function returned")

// KeyFunc is the body of UpdateKey: it reads and stages the key's header and
// elements through tx, which is valid only until it returns. Returning nil
// commits what it staged; ErrNoChange discards it and writes nothing; any other
// error discards it and is UpdateKey's error.
type KeyFunc func(tx *KeyTxn) error

// KeyTxn is one key's read-merge-write of its header (record) and the element
// keys of its collection layers, run by UpdateKey under the key's lock. Reads see
// what the transaction staged (an indexed Pebble batch holds its element writes);
// nothing outside sees any of it before UpdateKey commits it, in one batch with the
// header.
//
// PutElem and DelElem report no error: an error of theirs (a type that keeps no
// elements, a failed read) is kept and is UpdateKey's error, and nothing is
// written. A KeyTxn is used by one goroutine, the one running the KeyFunc.
type KeyTxn struct {
	s     *Store
	key   []byte
	p     int
	h     uint64
	cur   record.Record // the stored header
	rec   record.Record // the header as SetRecord left it (derived fields not set)
	has   bool
	set   bool                   // SetRecord was called
	b     *pebble.Batch          // indexed, holding the element writes; nil until the first
	elems map[string]*elemChange // by element key: every element read or written
	err   error                  // the first error of PutElem or DelElem
	done  bool
}

// elemChange is one element's state in a transaction: as stored (old) and as the
// transaction leaves it (now).
type elemChange struct {
	typ       record.Type
	ek        []byte
	elem      []byte // aliases ek
	ehash     uint64
	old       []byte // stored encoding; nil: no element key
	oldLive   bool
	now       []byte // the encoding the transaction leaves (nil: none)
	nowLive   bool
	written   bool
	nowParsed crdt.Field // now, decoded, when parsed
	parsed    bool
}

// UpdateKey runs fn on key's header and elements under the key's lock and
// commits what it staged, the header and every element write, in one Pebble
// batch, as durably as Update (through group commit). It returns the header as
// stored once it returns (the current one when fn staged nothing or returned
// ErrNoChange). The header's derived fields (Coll.Len, Bytes, Buckets) are set
// from the stored ones and the element writes, whatever fn put there.
//
// The header is written when fn called SetRecord or changed an element (a write
// leaving an element as stored changes nothing); an empty header is deleted. A header that does not fit its elements is refused
// (ErrBadHeader): a collection layer dropped while its element keys remain, or
// elements written for a layer the header lacks. The record cache, counts,
// memory sums and Observer follow the header as they follow Update's records;
// element keys are not in the memory sums yet.
func (s *Store) UpdateKey(key []byte, fn KeyFunc) (_ record.Record, err error) {
	if err := s.enter(); err != nil {
		return record.Record{}, err
	}
	defer s.exit(&err)
	p, h, dk, mu := s.lockKey(key)
	defer mu.Unlock()
	cur, curEnc, found, err := s.load(dk)
	if err != nil {
		return record.Record{}, err
	}
	tx := &KeyTxn{s: s, key: dk[len(dk)-len(key):], p: p, h: h, cur: cur, rec: cur, has: found}
	defer tx.close()
	guest(func() { err = fn(tx) })
	tx.done = true
	switch {
	case errors.Is(err, ErrNoChange):
		return cur, nil
	case err != nil:
		return record.Record{}, err
	case tx.err != nil:
		return record.Record{}, tx.err
	}
	ds := tx.deltas()
	if !tx.set && len(ds) == 0 {
		// No header change, and every element write staged leaves its element
		// as stored: committing would change nothing.
		return cur, nil
	}
	next, err := deriveHeader(cur, tx.rec, ds) // tx.rec is empty when !tx.has
	if err != nil {
		return record.Record{}, fmt.Errorf("storage: update key %q: %w", key, err)
	}
	b := tx.b
	if b == nil {
		b = s.db.NewBatch()
		defer b.Close()
	}
	st := staged{kf: s.kf, dk: dk, p: p, h: h, key: tx.key, cur: cur, curEnc: curEnc, found: found, next: next}
	if err := st.stage(b); err != nil {
		return record.Record{}, fmt.Errorf("storage: update key: %w", err)
	}
	if err := s.commit(b, s.wo); err != nil {
		s.rc.forget(dk) // as in write: what is stored now is unknown
		return record.Record{}, fmt.Errorf("storage: update key: %w", err)
	}
	s.committed(&st)
	return next, nil
}

// close releases the transaction's batch.
func (tx *KeyTxn) close() {
	tx.done = true
	if tx.b != nil {
		tx.b.Close()
		tx.b = nil
	}
}

// Key returns the key the transaction is on (valid during the KeyFunc).
func (tx *KeyTxn) Key() []byte { return tx.key }

// Record returns the key's header as the transaction leaves it so far, with its
// derived fields counting the element writes staged; found is false when there is
// none (none stored, or SetRecord was given an empty record).
func (tx *KeyTxn) Record() (rec record.Record, found bool) {
	if !tx.has {
		return record.Record{}, false
	}
	if !tx.set && !tx.wroteElems() {
		return tx.cur, true
	}
	rec, _ = deriveHeader(tx.cur, tx.rec, tx.deltas()) // errors are UpdateKey's
	return rec, true
}

// SetRecord stages r as the key's header (an empty r deletes it). Its derived
// fields are ignored: UpdateKey sets them (see there).
func (tx *KeyTxn) SetRecord(r record.Record) {
	if tx.done {
		return
	}
	tx.rec, tx.has, tx.set = r, !r.Empty(), true
}

// Elem returns element elem of the key's layer typ as the transaction leaves it;
// found is false when it has no element key.
func (tx *KeyTxn) Elem(typ record.Type, elem []byte) (f crdt.Field, found bool, err error) {
	c, err := tx.change(typ, elem)
	if err != nil || c.now == nil {
		return nil, false, err
	}
	if !c.parsed {
		if c.nowParsed, err = decodeElem(c.ek, c.now); err != nil {
			return nil, false, err
		}
		c.parsed = true
	}
	return c.nowParsed, true, nil
}

// PutElem stages f as element elem of the key's layer typ; an empty f deletes the
// element (an element key never holds an empty field). f is encoded at once, so
// the caller may reuse it.
func (tx *KeyTxn) PutElem(typ record.Type, elem []byte, f crdt.Field) {
	if len(f) == 0 {
		tx.DelElem(typ, elem)
		return
	}
	tx.write(typ, elem, f.AppendBinary(nil), rules.Live(typ, f))
}

// DelElem stages the removal of element elem of the key's layer typ (nothing when
// it has no element key).
func (tx *KeyTxn) DelElem(typ record.Type, elem []byte) { tx.write(typ, elem, nil, false) }

// write stages elem's new encoding enc (nil: deleted), live or not.
func (tx *KeyTxn) write(typ record.Type, elem, enc []byte, live bool) {
	if tx.done || tx.err != nil {
		return
	}
	c, err := tx.change(typ, elem)
	if err != nil {
		tx.err = err
		return
	}
	if enc == nil && c.now == nil {
		return // nothing to delete
	}
	err = tx.engine(func() error {
		if tx.b == nil {
			tx.b = tx.s.db.NewIndexedBatch()
		}
		if enc == nil {
			return tx.b.Delete(c.ek, nil)
		}
		return tx.b.Set(c.ek, enc, nil)
	})
	if err != nil {
		tx.err = fmt.Errorf("storage: stage element: %w", err)
		return
	}
	// Elem decodes now again rather than hand out the caller's f.
	c.now, c.nowLive, c.nowParsed, c.parsed, c.written = enc, live, nil, false, true
}

// change returns the transaction's state of element elem of layer typ, reading
// it from the store the first time.
func (tx *KeyTxn) change(typ record.Type, elem []byte) (*elemChange, error) {
	if tx.done {
		return nil, ErrTxnDone
	}
	if err := checkElemType(typ); err != nil {
		return nil, err
	}
	ehash := elemHash(elem)
	ek := elemKey(nil, tx.p, tx.h, tx.key, typ, ehash, elem)
	if c, ok := tx.elems[string(ek)]; ok {
		return c, nil
	}
	var old []byte
	err := tx.engine(func() (err error) {
		// No write of this element is staged yet: the store holds what the
		// transaction began with, and the key's lock keeps it so.
		old, _, err = tx.s.getEncoded(ek)
		return err
	})
	if err != nil {
		return nil, err
	}
	c := &elemChange{typ: typ, ek: ek, elem: ek[len(ek)-len(elem):], ehash: ehash, old: old, now: old}
	if old != nil {
		f, err := decodeElem(ek, old)
		if err != nil {
			return nil, err
		}
		c.oldLive = rules.Live(typ, f)
		c.nowLive = c.oldLive
		c.nowParsed, c.parsed = f, true
	}
	if tx.elems == nil {
		tx.elems = make(map[string]*elemChange)
	}
	tx.elems[string(ek)] = c
	return c, nil
}

// engine runs f, which calls Pebble, at the store's boundary: inside a KeyFunc
// (guest code) an engine panic must fail the store, not pass for the caller's.
func (tx *KeyTxn) engine(f func() error) (err error) {
	if err := tx.s.enter(); err != nil {
		return err
	}
	defer tx.s.exit(&err)
	return f()
}

// wroteElems reports whether the transaction staged an element write.
func (tx *KeyTxn) wroteElems() bool { return tx.b != nil }

// deltas returns the changes of the derived fields the staged element writes
// make, one per layer type written.
func (tx *KeyTxn) deltas() []*collDelta {
	var ds []*collDelta
	for _, c := range tx.elems {
		if !c.written || bytes.Equal(c.old, c.now) {
			continue
		}
		d := deltaOf(ds, c.typ)
		if d == nil {
			d = &collDelta{typ: c.typ}
			ds = append(ds, d)
		}
		if c.old != nil {
			d.add(-1, c.ek, c.elem, c.ehash, c.old, c.oldLive)
		}
		if c.now != nil {
			d.add(1, c.ek, c.elem, c.ehash, c.now, c.nowLive)
		}
	}
	return ds
}

// ScanElems calls fn for up to n elements (n <= 0: every one) of the key's layer
// typ whose hash is at least from, in (hash, element) order, as the transaction
// leaves them, until fn returns false. The page is read before fn is called, so fn
// may write (its writes show in later reads, not in this page); elem and f are
// fn's to keep.
//
// Resuming from the last hash seen repeats the elements of that hash; from one
// above it skips the rest of them when a page ended among elements sharing a hash
// (64-bit hashes: about n²/2^65 pairs in a layer of n).
func (tx *KeyTxn) ScanElems(typ record.Type, from uint64, n int, fn func(ehash uint64, elem []byte, f crdt.Field) bool) error {
	if tx.done {
		return ErrTxnDone
	}
	if err := checkElemType(typ); err != nil {
		return err
	}
	type item struct {
		ehash uint64
		elem  []byte
		f     crdt.Field
	}
	var page []item
	err := tx.engine(func() error {
		var r pebble.Reader = tx.s.db
		if tx.b != nil {
			r = tx.b
		}
		return scanLayer(r, tx.p, tx.h, tx.key, typ, from, func(ehash uint64, elem []byte, f crdt.Field) bool {
			page = append(page, item{ehash, bytes.Clone(elem), f})
			return n <= 0 || len(page) < n
		})
	})
	if err != nil {
		return err
	}
	for _, it := range page {
		more := false
		guest(func() { more = fn(it.ehash, it.elem, it.f) })
		if !more {
			break
		}
	}
	return nil
}

// scanLayer calls fn for the elements of key's layer typ in r whose hash is at
// least from, in order, until fn returns false. elem is valid during the call.
func scanLayer(r pebble.Reader, p int, h uint64, key []byte, typ record.Type, from uint64, fn func(ehash uint64, elem []byte, f crdt.Field) bool) error {
	prefix := layerPrefix(nil, p, h, key, typ)
	lo := elemKey(nil, p, h, key, typ, from, nil)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("storage: scan elements: %w", err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		e, err := parseElemKey(it.Key())
		if err != nil {
			return err
		}
		f, err := decodeElem(it.Key(), it.Value())
		if err != nil {
			return err
		}
		if !fn(e.ehash, e.elem, f) {
			break
		}
	}
	return it.Error()
}

// decodeElem decodes the element stored under ek: a whole crdt.Field.
func decodeElem(ek, enc []byte) (crdt.Field, error) {
	f, rest, err := crdt.DecodeField(enc)
	if err == nil && len(rest) > 0 {
		err = fmt.Errorf("%d trailing bytes", len(rest))
	}
	if err == nil && len(f) == 0 {
		err = errors.New("an empty field")
	}
	if err != nil {
		return nil, fmt.Errorf("storage: element %q: %w", ek, err)
	}
	return f, nil
}

// GetElems reads key's header and the elements elems of its layer typ at one
// point in time (a Pebble snapshot), so they are consistent with each other (a
// header and its element writes commit in one batch). fields[i] is nil when
// elems[i] has no element key. It never waits for a key's lock, and reads the
// header from Pebble, not the record cache.
func (s *Store) GetElems(key []byte, typ record.Type, elems [][]byte) (hdr record.Record, found bool, fields []crdt.Field, err error) {
	if err := checkElemType(typ); err != nil {
		return record.Record{}, false, nil, err
	}
	if err := s.enter(); err != nil {
		return record.Record{}, false, nil, err
	}
	defer s.exit(&err)
	h := ring.KeyHash(key)
	p := s.partition(h)
	snap := s.db.NewSnapshot()
	defer snap.Close()
	get := func(k []byte) ([]byte, error) {
		v, closer, err := snap.Get(k)
		if errors.Is(err, pebble.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("storage: get elements: %w", err)
		}
		defer closer.Close()
		return bytes.Clone(v), nil
	}
	dk := dataKey(nil, p, h, key)
	enc, err := get(dk)
	if err != nil {
		return record.Record{}, false, nil, err
	}
	if enc != nil {
		if hdr, found, err = decodeRecord(dk, enc); err != nil {
			return record.Record{}, false, nil, err
		}
	}
	fields = make([]crdt.Field, len(elems))
	var ek []byte
	for i, elem := range elems {
		ek = elemKey(ek[:0], p, h, key, typ, elemHash(elem), elem)
		v, err := get(ek)
		if err != nil {
			return record.Record{}, false, nil, err
		}
		if v != nil {
			if fields[i], err = decodeElem(ek, v); err != nil {
				return record.Record{}, false, nil, err
			}
		}
	}
	return hdr, found, fields, nil
}

// ScanElems calls fn for up to n elements (n <= 0: every one) of key's layer typ
// whose hash is at least from, in (hash, element) order, until fn returns false,
// from one point in time (a Pebble iterator's). It never waits for a key's lock.
// elem is valid only during the call; f is fn's to keep. See KeyTxn.ScanElems on
// resuming.
func (s *Store) ScanElems(key []byte, typ record.Type, from uint64, n int, fn func(ehash uint64, elem []byte, f crdt.Field) bool) (err error) {
	if err := checkElemType(typ); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit(&err)
	h := ring.KeyHash(key)
	seen := 0
	return scanLayer(s.db, s.partition(h), h, key, typ, from, func(ehash uint64, elem []byte, f crdt.Field) bool {
		more := false
		guest(func() { more = fn(ehash, elem, f) })
		seen++
		return more && (n <= 0 || seen < n)
	})
}

package hll

import (
	"encoding/binary"
	"slices"
)

// checkHeader applies isHLLObjectOrReply's rules: long enough for the header,
// the "HYLL" magic, a known encoding, and the exact length if dense.
func checkHeader(b []byte) error {
	if len(b) < HeaderSize || string(b[:4]) != "HYLL" || b[4] > encSparse ||
		(b[4] == encDense && len(b) != DenseSize) {
		return ErrWrongType
	}
	return nil
}

// Check reports whether b is a well-formed HLL value: ErrWrongType if Redis's
// type check refuses it, ErrCorrupt if its sparse opcodes do not cover exactly
// 16384 registers, nil otherwise.
func Check(b []byte) error {
	if err := checkHeader(b); err != nil {
		return err
	}
	if b[4] == encSparse && !walkSparse(b[HeaderSize:], nil) {
		return ErrCorrupt
	}
	return nil
}

// IsDense reports whether b is dense-encoded (b must pass Check).
func IsDense(b []byte) bool { return len(b) > 4 && b[4] == encDense }

// Add is PFADD on a key holding val (nil: missing), sparse values limited to
// sparseMax bytes. It returns the new value and PFADD's reply: true when the
// key was created or a register changed, in which case the cached cardinality
// is marked stale. A missing key with no elements is created empty. A
// corrupt sparse value is refused whole (ErrCorrupt) unless elems is empty,
// where Redis, reading no opcode, answers 0.
func Add(val []byte, sparseMax int, elems ...[]byte) (out []byte, changed bool, err error) {
	if val == nil {
		out, changed = newSparse(), true
	} else {
		check := Check
		if len(elems) == 0 {
			check = checkHeader // Redis reads no opcode then: a corrupt body answers 0
		}
		if err := check(val); err != nil {
			return nil, false, err
		}
		out = slices.Clone(val)
	}
	for _, e := range elems {
		index, count := patLen(e)
		if out[4] == encDense {
			changed = denseSet(out[HeaderSize:], index, count) || changed
			continue
		}
		var r int
		out, r = sparseSet(out, index, count, sparseMax)
		switch r {
		case 1:
			changed = true
		case -1:
			return nil, false, ErrCorrupt
		}
	}
	if changed {
		invalidate(out)
	}
	return out, changed, nil
}

// Count is PFCOUNT of a single key holding val (nil: missing, count 0). A
// valid cached cardinality is returned as it is, unchecked, as Redis does.
// Otherwise the count is computed and refreshed is val with the cache
// written, which the caller stores back (Redis's PFCOUNT writes it too);
// refreshed is nil when nothing changed.
func Count(val []byte) (card uint64, refreshed []byte, err error) {
	if val == nil {
		return 0, nil, nil
	}
	if err := checkHeader(val); err != nil {
		return 0, nil, err
	}
	if validCache(val) {
		return binary.LittleEndian.Uint64(val[8:HeaderSize]), nil, nil
	}
	h, ok := histogramOf(val)
	if !ok {
		return 0, nil, ErrCorrupt
	}
	card = h.estimate()
	refreshed = slices.Clone(val)
	binary.LittleEndian.PutUint64(refreshed[8:HeaderSize], card)
	return card, refreshed, nil
}

// CountUnion is PFCOUNT of several keys: the estimate of their registers'
// maximum. Missing keys (nil) count as empty HLLs; nothing is written.
func CountUnion(vals ...[]byte) (uint64, error) {
	var r Registers
	for _, v := range vals {
		if _, err := r.mergeValue(v); err != nil {
			return 0, err
		}
	}
	return r.Count(), nil
}

// Merge is PFMERGE dest src...: dest (nil: missing) and the sources are
// maxed register by register into dest, which becomes dense if any of them
// is dense and otherwise gets each changed register through the sparse
// encoder (so it may still become dense). The cached cardinality is marked
// stale, its other bits kept, as Redis leaves them.
func Merge(dest []byte, sparseMax int, srcs ...[]byte) ([]byte, error) {
	var max Registers
	useDense := false
	for _, v := range append([][]byte{dest}, srcs...) {
		dense, err := max.mergeValue(v)
		if err != nil {
			return nil, err
		}
		useDense = useDense || dense
	}
	return max.writeInto(dest, sparseMax, useDense), nil
}

// writeInto writes registers r into dest (nil: a new empty HLL) as PFMERGE
// does, r being at least dest's registers; dest must pass Check.
func (r *Registers) writeInto(dest []byte, sparseMax int, useDense bool) []byte {
	out := newSparse()
	if dest != nil {
		out = slices.Clone(dest)
	}
	if useDense {
		out, _ = toDense(out) // dest passed Check: it cannot fail
	}
	for i, v := range r {
		if v == 0 {
			continue
		}
		if out[4] == encDense {
			denseSet(out[HeaderSize:], i, v)
		} else {
			out, _ = sparseSet(out, i, v, sparseMax)
		}
	}
	invalidate(out)
	return out
}

package hll

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"strconv"
	"testing"
)

// TestDenseRegisters is PFSELFTEST's first test: random values set in every
// register read back unchanged, neighbours untouched.
func TestDenseRegisters(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	regs := make([]byte, DenseSize-HeaderSize)
	var want [NumRegisters]uint8
	for range 20 {
		for i := range want {
			want[i] = uint8(r.IntN(regMax + 1))
			denseSetReg(regs, i, want[i])
		}
		for i, w := range want {
			if got := denseGet(regs, i); got != w {
				t.Fatalf("register %d = %d, want %d", i, got, w)
			}
		}
	}
}

// TestPatLen checks the register and count derivation against its
// definition (the loop of hllPatLen). The hash itself is pinned by
// TestGolden: every register Redis set is in its GET bytes.
func TestPatLen(t *testing.T) {
	for _, e := range []string{"", "a", "hello", "12345678", "123456789", "el:1000"} {
		h := murmurHash64A([]byte(e), seed)
		idx, cnt := patLen([]byte(e))
		if idx != int(h&(NumRegisters-1)) {
			t.Errorf("%q: index %d, hash %x", e, idx, h)
		}
		rest := h>>P | 1<<Q
		want := 1
		for rest&1 == 0 {
			rest >>= 1
			want++
		}
		if int(cnt) != want || cnt < 1 || cnt > Q+1 {
			t.Errorf("%q: count %d, want %d", e, cnt, want)
		}
	}
}

// TestAddReplies checks PFADD's reply rules.
func TestAddReplies(t *testing.T) {
	v, changed, err := Add(nil, DefaultSparseMaxBytes)
	if err != nil || !changed || validCache(v) {
		t.Fatalf("PFADD of a missing key without elements: changed %v, valid cache %v, %v", changed, validCache(v), err)
	}
	v, changed, _ = Add(v, DefaultSparseMaxBytes)
	if changed {
		t.Fatal("PFADD of an existing key without elements changed it")
	}
	v, changed, _ = Add(v, DefaultSparseMaxBytes, []byte("a"))
	if !changed {
		t.Fatal("new element did not change a register")
	}
	_, refreshed, _ := Count(v)
	if refreshed == nil || !validCache(refreshed) {
		t.Fatal("PFCOUNT did not refresh the cache")
	}
	again, changed, _ := Add(refreshed, DefaultSparseMaxBytes, []byte("a"))
	if changed || !validCache(again) {
		t.Fatal("PFADD of a known element changed the value or its cache")
	}
	if card, re, _ := Count(again); card != 1 || re != nil {
		t.Fatalf("cached count %d, rewrite %v", card, re != nil)
	}
}

// TestSparseEqualsDense adds the same random elements to a sparse value
// (limit high enough to stay sparse while registers fit) and a dense one:
// same registers, same counts, as PFSELFTEST's second test checks.
func TestSparseEqualsDense(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	sparse, _, _ := Add(nil, 1<<20)
	dense, err := toDense(sparse)
	if err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= 20000; n++ {
		e := strconv.FormatUint(r.Uint64(), 36)
		sparse, _, _ = Add(sparse, 1<<20, []byte(e))
		dense, _, _ = Add(dense, 1<<20, []byte(e))
		if n%997 != 0 {
			continue
		}
		rs, err1 := Decode(sparse)
		rd, err2 := Decode(dense)
		if err1 != nil || err2 != nil || *rs != *rd {
			t.Fatalf("after %d elements registers differ (%v, %v)", n, err1, err2)
		}
		cs, _, _ := Count(sparse)
		cd, _, _ := Count(dense)
		if cs != cd || cs != rs.Count() {
			t.Fatalf("after %d elements counts %d (sparse) %d (dense) %d (registers)", n, cs, cd, rs.Count())
		}
		if IsDense(sparse) {
			t.Fatalf("sparse value became dense at %d elements", n)
		}
	}
}

// TestPromotion: a register above 32 or a value beyond the limit makes the
// value dense, with the register changed and the header kept.
func TestPromotion(t *testing.T) {
	v, _, _ := Add(nil, DefaultSparseMaxBytes, []byte("x"))
	binary.LittleEndian.PutUint64(v[8:], 77) // cache bytes survive promotion
	out, r := sparseSet(v, 5, 33, DefaultSparseMaxBytes)
	if r != 1 || !IsDense(out) || len(out) != DenseSize || denseGet(out[HeaderSize:], 5) != 33 ||
		binary.LittleEndian.Uint64(out[8:]) != 77 {
		t.Fatalf("value 33: r=%d dense=%v", r, IsDense(out))
	}
	out, r = sparseSet(v, 100, 3, len(v)) // splitting needs more bytes
	if r != 1 || !IsDense(out) || denseGet(out[HeaderSize:], 100) != 3 {
		t.Fatalf("over the limit: r=%d dense=%v", r, IsDense(out))
	}
	out, r = sparseSet(v, 100, 3, len(v)+3)
	if r != 1 || IsDense(out) {
		t.Fatalf("within the limit: r=%d dense=%v", r, IsDense(out))
	}
}

// TestCheck is the validation table.
func TestCheck(t *testing.T) {
	empty := newSparse()
	dense, _ := toDense(empty)
	mod := func(b []byte, f func([]byte) []byte) []byte { return f(append([]byte(nil), b...)) }
	for _, tc := range []struct {
		name string
		val  []byte
		want error
	}{
		{"empty sparse", empty, nil},
		{"empty dense", dense, nil},
		{"empty string", []byte{}, ErrWrongType},
		{"short", empty[:15], ErrWrongType},
		{"header only", empty[:16], ErrCorrupt},
		{"magic", mod(empty, func(b []byte) []byte { b[0] = 'h'; return b }), ErrWrongType},
		{"encoding 2", mod(empty, func(b []byte) []byte { b[4] = 2; return b }), ErrWrongType},
		{"dense short", dense[:DenseSize-1], ErrWrongType},
		{"dense long", append(append([]byte(nil), dense...), 0), ErrWrongType},
		{"sparse tail", append(append([]byte(nil), empty...), 0), ErrCorrupt},
		{"sparse short run", mod(empty, func(b []byte) []byte { b[17] = 0xfe; return b }), ErrCorrupt},
		{"truncated xzero", mod(empty, func(b []byte) []byte { return b[:17] }), ErrCorrupt},
		{"val overflow", append(append([]byte(nil), empty...), 0xff), ErrCorrupt},
		{"unused bytes ignored", mod(empty, func(b []byte) []byte { b[5] = 9; return b }), nil},
	} {
		if err := Check(tc.val); !errors.Is(err, tc.want) {
			t.Errorf("%s: Check = %v, want %v", tc.name, err, tc.want)
		}
		_, derr := Decode(tc.val)
		_, _, aerr := Add(tc.val, DefaultSparseMaxBytes, []byte("a"))
		_, merr := Merge(nil, DefaultSparseMaxBytes, tc.val)
		_, cerr := CountUnion(tc.val)
		for _, err := range []error{derr, aerr, merr, cerr} {
			if !errors.Is(err, tc.want) {
				t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
			}
		}
	}
}

// TestEncodeRoundTrip: Encode then Decode gives the registers back, sparse
// when they fit, dense when asked or when they do not.
func TestEncodeRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{0, 1, 10, 300, 3000, 50000} {
		regs := randomRegisters(r, n)
		for _, dense := range []bool{false, true} {
			b := Encode(regs, DefaultSparseMaxBytes, dense)
			got, err := Decode(b)
			if err != nil || *got != *regs {
				t.Fatalf("n=%d dense=%v: round trip failed: %v", n, dense, err)
			}
			if wantDense := dense || n >= 3000; IsDense(b) != wantDense {
				t.Fatalf("n=%d dense=%v: IsDense %v", n, dense, IsDense(b))
			}
			if c, _, _ := Count(b); c != regs.Count() {
				t.Fatalf("n=%d: Count %d, Registers.Count %d", n, c, regs.Count())
			}
		}
	}
}

// randomRegisters is the registers of n random elements.
func randomRegisters(r *rand.Rand, n int) *Registers {
	var regs Registers
	var buf [8]byte
	for range n {
		binary.LittleEndian.PutUint64(buf[:], r.Uint64())
		i, c := patLen(buf[:])
		regs[i] = max(regs[i], c)
	}
	return &regs
}

// TestEstimatorEdges: the empty HLL counts 0, all registers at Q+1 (tau's
// path) and a full dense histogram give finite counts.
func TestEstimatorEdges(t *testing.T) {
	var regs Registers
	if c := regs.Count(); c != 0 {
		t.Fatalf("empty count %d", c)
	}
	for i := range regs {
		regs[i] = Q + 1
	}
	if c := regs.Count(); c == 0 {
		t.Fatal("saturated registers count 0")
	}
	regs[0] = 1
	if c := regs.Count(); c == 0 {
		t.Fatal("nearly saturated registers count 0")
	}
}

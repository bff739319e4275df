package hll

import (
	"bytes"
	"math/rand/v2"
	"strconv"
	"testing"
)

// randomHLL builds an HLL value by PFADDs of random elements: mostly sparse
// ones (a few to a few hundred elements), sometimes dense (thousands, or a
// small sparse limit). It also returns the elements.
func randomHLL(r *rand.Rand) ([]byte, [][]byte) {
	n := r.IntN(300)
	limit := DefaultSparseMaxBytes
	switch r.IntN(4) {
	case 0:
		n = 2000 + r.IntN(6000)
	case 1:
		limit = 100
	}
	var elems [][]byte
	for range n {
		elems = append(elems, []byte(strconv.Itoa(r.IntN(20000))))
	}
	v, _, err := Add(nil, limit, elems...)
	if err != nil {
		panic(err)
	}
	return v, elems
}

func mustDecode(t *testing.T, v []byte) *Registers {
	t.Helper()
	r, err := Decode(v)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustMerge(t *testing.T, vals ...[]byte) []byte {
	t.Helper()
	out, err := Merge(nil, DefaultSparseMaxBytes, vals...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMergeLaws: PFMERGE into a missing key is a join: commutative,
// associative and idempotent, on the registers and, since its rendering
// depends only on the registers and on whether an input was dense, on the
// bytes too; and merging then counting is counting the union's elements.
func TestMergeLaws(t *testing.T) {
	r := rand.New(rand.NewPCG(20, 20))
	for i := range 60 {
		a, ea := randomHLL(r)
		b, eb := randomHLL(r)
		c, ec := randomHLL(r)

		ab, ba := mustMerge(t, a, b), mustMerge(t, b, a)
		if !bytes.Equal(ab, ba) {
			t.Fatalf("case %d: merge not commutative", i)
		}
		abc1 := mustMerge(t, mustMerge(t, a, b), c)
		abc2 := mustMerge(t, a, mustMerge(t, b, c))
		if !bytes.Equal(abc1, abc2) || !bytes.Equal(abc1, mustMerge(t, a, b, c)) {
			t.Fatalf("case %d: merge not associative", i)
		}
		if !bytes.Equal(mustMerge(t, ab, ab), ab) {
			t.Fatalf("case %d: merge not idempotent on bytes", i)
		}
		if *mustDecode(t, mustMerge(t, a, a)) != *mustDecode(t, a) {
			t.Fatalf("case %d: merge not idempotent on registers", i)
		}

		// The join on Registers agrees with PFMERGE.
		ra := *mustDecode(t, a)
		ra.Max(mustDecode(t, b))
		ra.Max(mustDecode(t, c))
		if ra != *mustDecode(t, abc1) {
			t.Fatalf("case %d: Registers.Max differs from Merge", i)
		}

		// Merge then count = count of the union of the elements.
		union, _, _ := Add(nil, DefaultSparseMaxBytes, append(append(append([][]byte(nil), ea...), eb...), ec...)...)
		cu, _, _ := Count(union)
		cm, _, err := Count(abc1)
		if err != nil || cm != cu {
			t.Fatalf("case %d: merged count %d, union count %d (%v)", i, cm, cu, err)
		}
		if cx, _ := CountUnion(a, b, c); cx != cu {
			t.Fatalf("case %d: CountUnion %d, union count %d", i, cx, cu)
		}
		if *mustDecode(t, union) != *mustDecode(t, abc1) {
			t.Fatalf("case %d: union registers differ from merged ones", i)
		}
	}
}

// TestMergeIntoExisting: PFMERGE into an existing key keeps its registers,
// and dest = dest ⊔ sources in any order of sources.
func TestMergeIntoExisting(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for i := range 30 {
		a, _ := randomHLL(r)
		b, _ := randomHLL(r)
		c, _ := randomHLL(r)
		x, err1 := Merge(a, DefaultSparseMaxBytes, b, c)
		y, err2 := Merge(a, DefaultSparseMaxBytes, c, b)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		want := mustDecode(t, mustMerge(t, a, b, c))
		if *mustDecode(t, x) != *want || *mustDecode(t, y) != *want {
			t.Fatalf("case %d: merge into existing key lost registers", i)
		}
	}
}

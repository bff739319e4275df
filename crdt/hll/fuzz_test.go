package hll

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the validator: it never panics, fails
// only with ErrWrongType or ErrCorrupt, agrees with Decode, and whatever it
// accepts counts, takes elements, merges and re-encodes without panicking,
// keeping its registers. Values that pass only the header check (corrupt
// sparse bodies) must be refused by Add, Merge and CountUnion with
// ErrCorrupt, and by Count unless its cached cardinality is valid.
func FuzzDecode(f *testing.F) {
	empty := newSparse()
	small, _, _ := Add(nil, DefaultSparseMaxBytes, []byte("a"), []byte("b"), []byte("c"))
	dense, _ := toDense(small)
	f.Add(empty)
	f.Add(small)
	f.Add(dense)
	f.Add(append(append([]byte(nil), small...), "hello"...))
	f.Add(small[:len(small)-1])
	f.Add([]byte("HYLL"))
	f.Add([]byte("HYLL\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		err := Check(b)
		if err != nil && !errors.Is(err, ErrWrongType) && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Check: unexpected error %v", err)
		}
		regs, derr := Decode(b)
		if (err == nil) != (derr == nil) {
			t.Fatalf("Check %v but Decode %v", err, derr)
		}
		_, _ = DebugDecode(b) // PFDEBUG reads unvalidated opcodes: must not panic
		_, _ = Encoding(b)
		if _, _, terr := ToDense(b); (terr == nil) != (err == nil) {
			t.Fatalf("Check %v but ToDense %v", err, terr)
		}
		_, _, cerr := Count(b)
		_, _, aerr := Add(b, DefaultSparseMaxBytes, []byte("x"))
		_, merr := Merge(nil, DefaultSparseMaxBytes, b, small)
		_, uerr := CountUnion(b, dense)
		if err != nil {
			for _, e := range []error{aerr, merr, uerr} {
				if !errors.Is(e, err) {
					t.Fatalf("Check %v but a command answered %v", err, e)
				}
			}
			if cerr != nil && !errors.Is(cerr, err) || errors.Is(err, ErrWrongType) && cerr == nil {
				t.Fatalf("Check %v but Count %v", err, cerr)
			}
			return
		}
		for _, e := range []error{cerr, aerr, merr, uerr} {
			if e != nil {
				t.Fatalf("valid value refused: %v", e)
			}
		}
		if c := regs.Count(); c > 1<<62 {
			t.Fatalf("count %d", c)
		}
		m, _ := Merge(b, 64, small, dense)
		got, err := Decode(m)
		if err != nil {
			t.Fatalf("merge output invalid: %v", err)
		}
		want := *regs
		want.Max(mustDecode(t, dense))
		if *got != want {
			t.Fatal("merge lost registers")
		}
		re := Encode(regs, DefaultSparseMaxBytes, false)
		if back, err := Decode(re); err != nil || *back != *regs {
			t.Fatalf("encode round trip: %v", err)
		}
		if !bytes.Equal(Encode(regs, DefaultSparseMaxBytes, false), re) {
			t.Fatal("Encode not deterministic")
		}
	})
}

package hll

import (
	"strconv"
	"testing"
)

// BenchmarkAdd is PFADD of one new element to a dense HLL (hash, register
// update, value copy).
func BenchmarkAdd(b *testing.B) {
	v, _, _ := Add(nil, 0) // limit 0: dense from the first register
	elems := make([][]byte, 1024)
	for i := range elems {
		elems[i] = []byte("elem:" + strconv.Itoa(i))
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		v, _, _ = Add(v, 0, elems[i%len(elems)])
	}
}

// BenchmarkCount is PFCOUNT of a dense HLL with a stale cache (histogram and
// estimator).
func BenchmarkCount(b *testing.B) {
	var elems [][]byte
	for i := range 100000 {
		elems = append(elems, []byte(strconv.Itoa(i)))
	}
	v, _, _ := Add(nil, DefaultSparseMaxBytes, elems...)
	if !IsDense(v) {
		b.Fatal("not dense")
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Count(v); err != nil {
			b.Fatal(err)
		}
	}
}

package crdt_test

// crdt may import nothing of ours but vclock (DESIGN.md's layout), so it parses
// counter registers itself. Here, as an external test that adds no dependency to
// the package, its parsing is checked against internal/num, which proxy and the
// protocol front ends use: a value INCR and INCRBYFLOAT accept today, a counter
// register must accept too, and alike.

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/dynakv/dynakv/crdt"
	"github.com/dynakv/dynakv/internal/num"
)

// readReg reads b as a lone counter register, as INCR and INCRBYFLOAT would.
func readReg(b []byte) (int64, bool, float64, bool) {
	c := crdt.CounterOf(crdt.Field{{Dot: crdt.Dot{Actor: "a", Counter: 1}, Kind: crdt.KindReg, Data: b}})
	i, iok := c.Int64()
	f, fok := c.Float64()
	return i, iok, f, fok
}

// numReads is what internal/num says, with the two refusals crdt adds: a stored
// infinity (proxy's applyIncrFloat refuses it too) and Go's digit separators,
// which Redis's strtold does not take ("1_0" is not a float to Redis).
func numReads(b []byte) (int64, bool, float64, bool) {
	i, iok := num.ParseInt(b)
	f, fok := num.ParseFloat(b)
	if math.IsInf(f, 0) || bytes.IndexByte(b, '_') >= 0 {
		f, fok = 0, false
	}
	return i, iok, f, fok
}

func checkReads(t *testing.T, b []byte) {
	t.Helper()
	i, iok, f, fok := readReg(b)
	wi, wiok, wf, wfok := numReads(b)
	if i != wi || iok != wiok || fok != wfok || f != wf { // -0 reads as 0: INCRBYFLOAT adds to either alike
		t.Errorf("%q: crdt reads %d %v %v %v, num %d %v %v %v", b, i, iok, f, fok, wi, wiok, wf, wfok)
	}
	if crdt.IsCounterNumber(b) != (iok || fok) {
		t.Errorf("%q: IsCounterNumber disagrees with the reads", b)
	}
	if !iok && !fok && len(b) > 0 {
		// Not a number: GET shows the bytes whatever the increments.
		c := crdt.CounterOf(crdt.Field{
			{Dot: crdt.Dot{Actor: "a", Counter: 1}, Kind: crdt.KindReg, Data: b},
			{Dot: crdt.Dot{Actor: "b", Counter: 1}, Kind: crdt.KindIncr, I: 1},
		})
		if got := c.AppendText(nil); !bytes.Equal(got, b) {
			t.Errorf("%q with an increment renders %q", b, got)
		}
	}
}

func TestCounterParsingMatchesNum(t *testing.T) {
	for _, s := range []string{
		"0", "1", "-1", "10", "010", "-0", "+1", " 1", "1 ", "\t1", "1\x00", "1\x002",
		"9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
		"18446744073709551616", "100000000000000000000", "1.5", "-0.25", ".5", "5.", "+.5", "1e3",
		"5.0e3", "1E+3", "0x1p-2", "0x10", "inf", "-inf", "Infinity", "nan", "NaN", "1e400",
		"1e-400", "1_0", "0x_1p0", "abc", "1.5x", "", "-", "+", ".", "e1", "1e", "٣",
		"1" + strings.Repeat("0", 5118), "1." + strings.Repeat("0", 5117), "1." + strings.Repeat("0", 5118),
	} {
		checkReads(t, []byte(s))
	}
	rng := rand.New(rand.NewPCG(20, 3))
	const alphabet = "0123456789+-.eE xXpP_infa\t"
	for range 20000 {
		b := make([]byte, 1+rng.IntN(24))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		if rng.IntN(3) == 0 { // mostly digits: more numbers than noise
			for i := range b {
				b[i] = '0' + byte(rng.IntN(10))
			}
			if rng.IntN(2) == 0 {
				b[0] = '-'
			}
		}
		checkReads(t, b)
	}
}

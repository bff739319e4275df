package num

import (
	"math"
	"strconv"
	"strings"
	"testing"
)

func TestParseInt(t *testing.T) {
	for s, want := range map[string]bool{
		"0": true, "1": true, "-1": true, "99": true, "-99": true,
		"9223372036854775807": true, "-9223372036854775808": true,
		"": false, "+1": false, " 1": false, "1 ": false, "01": false, "-0": false, "-": false,
		"9223372036854775808": false, "-9223372036854775809": false, "1.5": false, "٣": false,
		"18446744073709551616": false, "-18446744073709551616": false, "100000000000000000000": false,
	} {
		n, ok := ParseInt([]byte(s))
		if ok != want {
			t.Errorf("ParseInt(%q) ok = %v, want %v", s, ok, want)
		}
		if ok && strconv.FormatInt(n, 10) != s {
			t.Errorf("ParseInt(%q) = %d", s, n)
		}
	}
}

func TestParseFloat(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
		ok   bool
	}{
		{"1.5", 1.5, true}, {"-0.25", -0.25, true}, {"10", 10, true}, {"+3", 3, true},
		{"1e3", 1000, true}, {"0x1p-2", 0.25, true}, {"inf", math.Inf(1), true},
		{"-Infinity", math.Inf(-1), true}, {"1" + strings.Repeat("0", 5118), 0, false},
		{"", 0, false}, {" 1", 0, false}, {"\t1", 0, false}, {"1 ", 0, false}, {"nan", 0, false},
		{"1e400", 0, false}, {"abc", 0, false}, {"1.5x", 0, false},
		{"1." + strings.Repeat("0", 5118), 0, false}, // 5120 bytes: too long
		{"1_0", 0, false}, {"0x1_0p0", 0, false}, {"1_000.5", 0, false}, // Go's separators, not strtold's
	} {
		f, ok := ParseFloat([]byte(tc.in))
		short := tc.in
		if len(short) > 20 {
			short = short[:20] + "..."
		}
		if ok != tc.ok || ok && f != tc.want {
			t.Errorf("ParseFloat(%q) = %v, %v; want %v, %v", short, f, ok, tc.want, tc.ok)
		}
	}
	if f, ok := ParseFloat([]byte("1." + strings.Repeat("0", 5117))); !ok || f != 1 {
		t.Errorf("ParseFloat of 5119 bytes = %v, %v; want 1, true", f, ok)
	}
}

// refInt is the obvious implementation of string2ll's rule: strconv, then the
// canonical form must print back to the input.
func refInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, false
	}
	return n, strconv.FormatInt(n, 10) == string(b)
}

// FuzzParseInt checks the allocation-free ParseInt against refInt.
func FuzzParseInt(f *testing.F) {
	for _, s := range []string{"0", "-0", "01", "+1", "-9223372036854775808", "9223372036854775808", " 1", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, ok := ParseInt(b)
		rn, rok := refInt(b)
		if ok != rok || ok && n != rn {
			t.Fatalf("ParseInt(%q) = %d, %v; reference %d, %v", b, n, ok, rn, rok)
		}
	})
}

// FuzzParseFloat checks ParseFloat against strconv: it accepts exactly what strconv
// parses without error, NaN, a leading space and Go's digit separators excepted,
// below 5 KiB.
func FuzzParseFloat(f *testing.F) {
	for _, s := range []string{"1.5", "inf", "nan", " 1", "1e400", "0x1p-2", "1_0", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := ParseFloat(b)
		want, err := strconv.ParseFloat(string(b), 64)
		wok := err == nil && !math.IsNaN(want) && len(b) > 0 && len(b) < 5120 && !IsSpace(b[0]) &&
			!strings.Contains(string(b), "_")
		if ok != wok || ok && got != want {
			t.Fatalf("ParseFloat(%q) = %v, %v; strconv %v, %v", b, got, ok, want, err)
		}
	})
}

func TestParseMemory(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"0", 0, true}, {"100", 100, true}, {"100b", 100, true}, {"1k", 1000, true},
		{"1kb", 1024, true}, {"1KB", 1024, true}, {"64mb", 64 << 20, true}, {"64m", 64e6, true},
		{"1gb", 1 << 30, true}, {"1G", 1e9, true}, {"18446744073709551615", 1<<64 - 1, true},
		{"", 0, false}, {"mb", 0, false}, {"-1", 0, false}, {"+1", 0, false}, {"1 mb", 0, false},
		{"1tb", 0, false}, {"1.5gb", 0, false}, {"18446744073709551616", 0, false},
		{"17179869184gb", 0, false}, {"1kbb", 0, false},
	} {
		got, ok := ParseMemory(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseMemory(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

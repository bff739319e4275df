package memcache

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/dynakv/dynakv/proxy"
)

func TestTokenize(t *testing.T) {
	for _, tc := range []struct {
		line string
		toks []string
		rest string
	}{
		{"", nil, ""},
		{"   ", nil, ""},
		{"get a", []string{"get", "a"}, ""},
		{"  get   a  b ", []string{"get", "a", "b"}, ""},
		{"a\tb c", []string{"a\tb", "c"}, ""},
		{"1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23", []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16", "17", "18", "19", "20", "21", "22", "23"}, ""},
		{"1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24  25", []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16", "17", "18", "19", "20", "21", "22", "23"}, " 24  25"},
	} {
		toks, rest := tokenize(nil, []byte(tc.line))
		var got []string
		for _, tok := range toks {
			got = append(got, string(tok))
		}
		if !slices.Equal(got, tc.toks) || string(rest) != tc.rest {
			t.Errorf("tokenize(%q) = %q, %q; want %q, %q", tc.line, got, rest, tc.toks, tc.rest)
		}
	}
	if n := testing.AllocsPerRun(100, func() {
		buf := make([][]byte, 0, maxTokens)
		tokenize(buf[:0], []byte("set key 0 0 5 noreply"))
	}); n > 1 {
		t.Errorf("tokenize allocates %v times", n)
	}
}

func TestNumbers(t *testing.T) {
	for _, tc := range []struct {
		in       string
		i32      int64 // math.MinInt64: refused
		u32, u64 int64 // -1: refused
	}{
		{"0", 0, 0, 0},
		{"42", 42, 42, 42},
		{"+42", 42, 42, 42},
		{"-42", -42, -1, -1},
		{"-0", 0, 0, 0},
		{"\t7", 7, 7, 7},
		{"7\r", 7, 7, 7},
		{"", math.MinInt64, -1, -1},
		{"+", math.MinInt64, -1, -1},
		{"1x", math.MinInt64, -1, -1},
		{"0x10", math.MinInt64, -1, -1},
		{"2147483647", 2147483647, 2147483647, 2147483647},
		{"2147483648", math.MinInt64, 2147483648, 2147483648},
		{"-2147483648", -2147483648, -1, -1},
		{"-2147483649", math.MinInt64, -1, -1},
		{"4294967295", math.MinInt64, 4294967295, 4294967295},
		{"4294967296", math.MinInt64, -1, 4294967296},
		{"18446744073709551616", math.MinInt64, -1, -1},
	} {
		i, ok := parseInt32([]byte(tc.in))
		if ok != (tc.i32 != math.MinInt64) || (ok && int64(i) != tc.i32) {
			t.Errorf("parseInt32(%q) = %d, %v", tc.in, i, ok)
		}
		u, ok := parseUint32([]byte(tc.in))
		if ok != (tc.u32 >= 0) || (ok && int64(u) != tc.u32) {
			t.Errorf("parseUint32(%q) = %d, %v", tc.in, u, ok)
		}
		v, ok := parseUint64([]byte(tc.in))
		if ok != (tc.u64 >= 0) || (ok && int64(v) != tc.u64) {
			t.Errorf("parseUint64(%q) = %d, %v", tc.in, v, ok)
		}
	}
	if v, ok := parseUint64([]byte("18446744073709551615")); !ok || v != math.MaxUint64 {
		t.Errorf("parseUint64(max) = %d, %v", v, ok)
	}
}

func TestExpiry(t *testing.T) {
	now := testEpoch
	for _, tc := range []struct {
		exptime int32
		want    int64
	}{
		{0, 0},
		{-1, expiredLongAgo},
		{math.MinInt32, expiredLongAgo},
		{1, now.UnixMilli() + 1000},
		{maxRelative, now.UnixMilli() + maxRelative*1000},
		{maxRelative + 1, (maxRelative + 1) * 1000},
		{int32(now.Unix() + 10), now.UnixMilli() + 10000},
	} {
		if got := expiry(tc.exptime, now); got != tc.want {
			t.Errorf("expiry(%d) = %d, want %d", tc.exptime, got, tc.want)
		}
	}
	for _, tc := range []struct {
		exp  int64
		want int64
	}{{0, -1}, {now.UnixMilli() + 90000, 90}, {now.UnixMilli() + 89001, 90}, {now.UnixMilli() + 1, 1}, {now.UnixMilli() - 5, 0}} {
		if got := ttlSeconds(tc.exp, now); got != tc.want {
			t.Errorf("ttlSeconds(%d) = %d, want %d", tc.exp, got, tc.want)
		}
	}
}

func TestLineHelpers(t *testing.T) {
	for in, want := range map[string]string{"get a\r": "get a", "get a": "get a", "\r": "", "a\x00b\r": "a", "a\rb": "a\rb"} {
		if got := string(trimLine([]byte(in))); got != want {
			t.Errorf("trimLine(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]bool{"get a": true, "gets a": true, "  get a": true, "gat 1 a": false, "getx": false, "get": false} {
		if got := isMultiGet([]byte(in)); got != want {
			t.Errorf("isMultiGet(%q) = %v", in, got)
		}
	}
	long := fmt.Sprintf("%101s", "") + "get a"
	if isMultiGet([]byte(long)) {
		t.Error("isMultiGet accepted 101 leading spaces")
	}
}

func TestErrorLines(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{proxy.ErrNonNumeric, lineNonNumeric},
		{fmt.Errorf("wrapped: %w", proxy.ErrValueTooBig), lineTooLarge},
		{context.DeadlineExceeded, "SERVER_ERROR timeout"},
		{errors.New("noquorum reached 1 of 2 replicas\r\nset x"), "SERVER_ERROR noquorum reached 1 of 2 replicas  set x"},
	} {
		if got := errorLine(tc.err); got != tc.want {
			t.Errorf("errorLine(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{}.EnsureDefaults()
	if c.MaxClients != 10000 || c.MaxKeyBytes != 250 || c.Version == "" || c.Observer == nil || c.Logger == nil || c.Now == nil {
		t.Fatalf("defaults: %+v", c)
	}
	if d := (Config{MaxClients: -1}).EnsureDefaults(); d.MaxClients != 10000 {
		t.Fatalf("negative MaxClients: %d", d.MaxClients)
	}
	if time.Since(c.Now()) > time.Minute {
		t.Fatal("default clock")
	}
}

func TestQuorumErrorLine(t *testing.T) {
	if got := errorLine(fmt.Errorf("x: %w", &proxy.QuorumError{Acks: 0, Need: 2})); got != "SERVER_ERROR noquorum reached 0 of 2 replicas" {
		t.Errorf("got %q", got)
	}
}

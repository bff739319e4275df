package proxy_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"math"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/dynakv/dynakv/coordinator"
	"github.com/dynakv/dynakv/proxy"
)

// allKinds lists every Kind; TestAllKindsListed keeps it complete.
var allKinds = []proxy.Kind{
	proxy.OpGet, proxy.OpSet, proxy.OpDelete, proxy.OpGetDel, proxy.OpGetEx, proxy.OpIncr,
	proxy.OpIncrFloat, proxy.OpIncrUnsigned, proxy.OpAppend, proxy.OpSetRange, proxy.OpExpire,
	proxy.OpDGet, proxy.OpDPut, proxy.OpDDel, proxy.OpSetBit,
}

func TestAllKindsListed(t *testing.T) {
	for i := range 256 {
		k := proxy.Kind(i)
		_, err := proxy.DecodeOp(proxy.Op{Kind: k}.AppendBinary(nil))
		if known := slices.Contains(allKinds, k); known != (err == nil) {
			t.Errorf("kind %d: listed %v, but DecodeOp: %v", k, known, err)
		}
	}
}

// fullOp returns an op of kind with every field set to a non-zero value.
func fullOp(kind proxy.Kind) proxy.Op {
	return proxy.Op{
		Kind: kind, Key: []byte("key\x00\xff"), Value: []byte("value"), Flags: math.MaxUint32,
		Expiry: 1_700_000_000_000, KeepTTL: true, Persist: true, SetExpiry: true, Cond: proxy.CondLT,
		CAS: math.MaxUint64, ReturnOld: true, Delta: math.MinInt64, UDelta: 1 << 63, Decr: true,
		Float: -1.5e-300, Offset: math.MaxInt64, Prepend: true, Context: "g2IBAQE",
		R: 3, W: -1, Local: true, Accepted: 1_700_000_000_123,
		Vivify: true, VivifyExpiry: -7, Initial: math.MaxUint64,
	}
}

// fullResult returns a result with every field set to a non-zero value.
func fullResult(st proxy.Status) proxy.Result {
	return proxy.Result{
		Status: st, Found: true, Created: true,
		Item: proxy.Item{Value: []byte("v"), Flags: 7, Expiry: -5, CAS: 99, Siblings: 2},
		Int:  math.MinInt64, Uint: math.MaxUint64, Float: []byte("3.5"), CAS: 1,
		Context: "ctx", Values: [][]byte{[]byte("a"), {}, []byte("ccc")},
	}
}

// requireAllSet fails when a field of v (recursively) is zero, so a field added to
// Op, Result or Item without a codec change makes the round-trip tests fail.
func requireAllSet(t *testing.T, path string, v reflect.Value) {
	t.Helper()
	if v.Kind() == reflect.Struct {
		for i := range v.NumField() {
			requireAllSet(t, path+"."+v.Type().Field(i).Name, v.Field(i))
		}
		return
	}
	if v.IsZero() || (v.Kind() == reflect.Slice && v.Len() == 0) {
		t.Errorf("%s is not set in the full value: the codec test would not cover it", path)
	}
}

func opRoundTrip(t *testing.T, op proxy.Op) {
	t.Helper()
	enc := op.AppendBinary([]byte("prefix"))[len("prefix"):]
	got, err := proxy.DecodeOp(enc)
	if err != nil {
		t.Fatalf("DecodeOp(%+v): %v", op, err)
	}
	if !reflect.DeepEqual(got, op) {
		t.Fatalf("round trip:\n got %#v\nwant %#v", got, op)
	}
	if again := got.AppendBinary(nil); !bytes.Equal(again, enc) {
		t.Fatalf("re-encoding differs:\n% x\n% x", again, enc)
	}
	enc[len(enc)-1] ^= 0xff // the decoded op must not alias the input
	if !reflect.DeepEqual(got, op) {
		t.Fatalf("decoded op aliases its input")
	}
}

// TestOpCodecRoundTrip encodes every Kind with every field used. The codec keeps nil
// and empty slices apart, so the decoded op is reflect.DeepEqual to the original.
func TestOpCodecRoundTrip(t *testing.T) {
	requireAllSet(t, "Op", reflect.ValueOf(fullOp(proxy.OpSet)))
	for _, k := range allKinds {
		opRoundTrip(t, fullOp(k))
		opRoundTrip(t, proxy.Op{Kind: k}) // nil slices, zero fields
		opRoundTrip(t, proxy.Op{Kind: k, Key: []byte{}, Value: []byte{}})
	}
	for _, c := range []proxy.Cond{proxy.CondNone, proxy.CondNX, proxy.CondXX, proxy.CondGT, proxy.CondLT, proxy.CondCAS} {
		opRoundTrip(t, proxy.Op{Kind: proxy.OpExpire, Key: []byte("k"), Cond: c})
	}
	for _, f := range []float64{math.Inf(1), math.Inf(-1), math.Copysign(0, -1), math.SmallestNonzeroFloat64, math.MaxFloat64} {
		opRoundTrip(t, proxy.Op{Kind: proxy.OpIncrFloat, Key: []byte("k"), Float: f})
	}
	for _, n := range []int64{math.MinInt64, -1, 0, 1, 63, 64, math.MaxInt64} {
		opRoundTrip(t, proxy.Op{Kind: proxy.OpIncr, Delta: n, Expiry: n, Offset: n, R: int(n), W: int(-n)})
	}
	big := proxy.Op{Kind: proxy.OpSet, Key: bytes.Repeat([]byte("k"), 300), Value: bytes.Repeat([]byte("v"), 70_000),
		Context: strings.Repeat("c", 200)}
	opRoundTrip(t, big)
	// Every bool alone, so no two share a bit.
	bools := []func(*proxy.Op){
		func(o *proxy.Op) { o.KeepTTL = true }, func(o *proxy.Op) { o.Persist = true },
		func(o *proxy.Op) { o.SetExpiry = true }, func(o *proxy.Op) { o.ReturnOld = true },
		func(o *proxy.Op) { o.Decr = true }, func(o *proxy.Op) { o.Prepend = true },
		func(o *proxy.Op) { o.Local = true }, func(o *proxy.Op) { o.Vivify = true },
	}
	for _, set := range bools {
		op := proxy.Op{Kind: proxy.OpSet}
		set(&op)
		opRoundTrip(t, op)
	}
	// NaN is not DeepEqual to itself; its bits survive.
	enc := proxy.Op{Kind: proxy.OpIncrFloat, Float: math.NaN()}.AppendBinary(nil)
	got, err := proxy.DecodeOp(enc)
	if err != nil || math.Float64bits(got.Float) != math.Float64bits(math.NaN()) {
		t.Fatalf("NaN: %v, %v", got.Float, err)
	}
}

func resultRoundTrip(t *testing.T, res proxy.Result) {
	t.Helper()
	enc := proxy.AppendResult([]byte("prefix"), res, nil)[len("prefix"):]
	got, opErr, err := proxy.DecodeResult(enc)
	if err != nil || opErr != nil {
		t.Fatalf("DecodeResult(%+v): %v, %v", res, opErr, err)
	}
	if !reflect.DeepEqual(got, res) {
		t.Fatalf("round trip:\n got %#v\nwant %#v", got, res)
	}
	if again := proxy.AppendResult(nil, got, nil); !bytes.Equal(again, enc) {
		t.Fatalf("re-encoding differs:\n% x\n% x", again, enc)
	}
}

func TestResultCodecRoundTrip(t *testing.T) {
	requireAllSet(t, "Result", reflect.ValueOf(fullResult(proxy.Stored)))
	for _, st := range []proxy.Status{0, proxy.Stored, proxy.NotStored, proxy.Exists, proxy.NotFound} {
		resultRoundTrip(t, fullResult(st))
		resultRoundTrip(t, proxy.Result{Status: st})
	}
	resultRoundTrip(t, proxy.Result{Item: proxy.Item{Value: []byte{}}, Float: []byte{}, Values: [][]byte{}})
	resultRoundTrip(t, proxy.Result{Values: [][]byte{nil, {}, nil}})
	resultRoundTrip(t, proxy.Result{Item: proxy.Item{Siblings: -1, Expiry: math.MinInt64}, Int: math.MaxInt64})
	resultRoundTrip(t, proxy.Result{Context: strings.Repeat("x", 20_000), Values: slices.Repeat([][]byte{[]byte("s")}, 1000)})
}

// sentinelErrors lists every exported proxy error; TestEverySentinelListed checks it
// against the package source.
var sentinelErrors = map[string]error{
	"ErrNotInteger":     proxy.ErrNotInteger,
	"ErrOverflow":       proxy.ErrOverflow,
	"ErrNotFloat":       proxy.ErrNotFloat,
	"ErrNaN":            proxy.ErrNaN,
	"ErrNonNumeric":     proxy.ErrNonNumeric,
	"ErrValueTooBig":    proxy.ErrValueTooBig,
	"ErrBadContext":     proxy.ErrBadContext,
	"ErrBadOffset":      proxy.ErrBadOffset,
	"ErrUnknownOp":      proxy.ErrUnknownOp,
	"ErrInvalidFlush":   proxy.ErrInvalidFlush,
	"ErrRunLocally":     proxy.ErrRunLocally,
	"ErrBadEncoding":    proxy.ErrBadEncoding,
	"ErrOutcomeUnknown": proxy.ErrOutcomeUnknown,
	"ErrNoSuchKey":      proxy.ErrNoSuchKey,
	"ErrSameKey":        proxy.ErrSameKey,
	"ErrOOM":            proxy.ErrOOM,
	"ErrWouldBlock":     proxy.ErrWouldBlock,
	"ErrMayHaveRun":     proxy.ErrMayHaveRun,
}

// TestEverySentinelListed: a sentinel added to the package must be added to
// sentinelErrors, and so be checked by TestResultCodecErrors (and added to the
// codec's table, or that test fails).
func TestEverySentinelListed(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, spec := range gd.Specs {
				for _, id := range spec.(*ast.ValueSpec).Names {
					if id.IsExported() && strings.HasPrefix(id.Name, "Err") {
						if _, ok := sentinelErrors[id.Name]; !ok {
							t.Errorf("%s (%s) is not in sentinelErrors", id.Name, name)
						}
					}
				}
			}
		}
	}
}

func decodeErr(t *testing.T, in error) error {
	t.Helper()
	// The result is ignored when there is an error.
	enc := proxy.AppendResult(nil, fullResult(proxy.Stored), in)
	res, opErr, err := proxy.DecodeResult(enc)
	if err != nil {
		t.Fatalf("DecodeResult(error %v): %v", in, err)
	}
	if !reflect.DeepEqual(res, proxy.Result{}) {
		t.Fatalf("error result carries %+v", res)
	}
	if opErr == nil {
		t.Fatalf("error %v decoded as nil", in)
	}
	if opErr.Error() != in.Error() {
		t.Fatalf("text %q, want %q", opErr.Error(), in.Error())
	}
	if again := proxy.AppendResult(nil, proxy.Result{}, opErr); !bytes.Equal(again, enc) {
		t.Fatalf("re-encoding %v differs", in)
	}
	return opErr
}

func TestResultCodecErrors(t *testing.T) {
	targets := []error{context.DeadlineExceeded, context.Canceled}
	for _, s := range sentinelErrors {
		targets = append(targets, s)
	}
	for _, s := range targets {
		if got := decodeErr(t, s); got != s {
			t.Errorf("%v decoded as %#v, want the sentinel itself", s, got)
		}
		wrapped := fmt.Errorf("remote: %w: detail", s)
		got := decodeErr(t, wrapped)
		if !errors.Is(got, s) {
			t.Errorf("%v: errors.Is(decoded, sentinel) is false", wrapped)
		}
		for _, other := range targets {
			if other != s && errors.Is(got, other) {
				t.Errorf("%v decodes to an error that also is %v", wrapped, other)
			}
		}
	}

	// A real deadline error from a context.
	ctx, cancel := context.WithTimeout(context.Background(), -1)
	defer cancel()
	if got := decodeErr(t, ctx.Err()); !errors.Is(got, context.DeadlineExceeded) {
		t.Errorf("ctx.Err() decoded as %v", got)
	}

	for _, in := range []error{
		&coordinator.QuorumError{Acks: 1, Need: 2},
		fmt.Errorf("get k: %w", &coordinator.QuorumError{Acks: 0, Need: 3}),
		&coordinator.QuorumError{Acks: -1, Need: math.MaxInt},
	} {
		var want *coordinator.QuorumError
		errors.As(in, &want)
		got := decodeErr(t, in)
		var qe *coordinator.QuorumError
		if !errors.As(got, &qe) || *qe != *want {
			t.Errorf("%v decoded as %#v", in, got)
		}
	}

	for _, in := range []error{errors.New("storage: closed"), errors.New(""), errors.New("multi\nline \x00 text")} {
		got := decodeErr(t, in)
		for _, s := range targets {
			if errors.Is(got, s) {
				t.Errorf("%q decodes to an error that is %v", in, s)
			}
		}
	}
}

// validOp and validResult are encodings whose every prefix and mutation the reject
// tests try.
func validOp() []byte { return fullOp(proxy.OpSet).AppendBinary(nil) }
func validResult() []byte {
	return proxy.AppendResult(nil, fullResult(proxy.Stored), nil)
}

func TestDecodeRejects(t *testing.T) {
	uv := func(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }
	cat := func(parts ...[]byte) []byte { return slices.Concat(parts...) }
	// opHead is an OpGet up to (not including) its key; opTail is everything after
	// an OpGet's nil key and nil value.
	opHead := []byte{4, byte(proxy.OpGet), 0, 0}
	opTail := proxy.Op{Kind: proxy.OpGet}.AppendBinary(nil)[len(opHead)+2:]
	okResult := proxy.AppendResult(nil, proxy.Result{}, nil)
	okHead := okResult[:len(okResult)-1] // up to the Values count
	resHead := []byte{3, 0, 0, 0}        // version, ok, status, found
	type reject struct {
		in  []byte
		why string // part of the error text
	}
	ops := map[string]reject{
		"empty":             {nil, "truncated"},
		"bad version":       {cat([]byte{5}, validOp()[1:]), "unknown op version 5"},
		"version 1":         {cat([]byte{1}, validOp()[1:]), "unknown op version 1"},
		"version 2":         {cat([]byte{2}, validOp()[1:]), "unknown op version 2"},
		"version 3":         {cat([]byte{3}, validOp()[1:]), "unknown op version 3"},
		"kind 0":            {[]byte{4, 0, 0, 0}, "unknown kind 0"},
		"unknown kind":      {[]byte{4, byte(proxy.OpSetBit) + 1, 0, 0}, "unknown kind"},
		"unknown cond":      {[]byte{4, 1, byte(proxy.CondCAS) + 1, 0}, "unknown cond"},
		"unknown flag bit":  {cat([]byte{4, 1, 0}, uv(nil, 1024)), "unknown op flags"},
		"non-minimal flags": {[]byte{4, 1, 0, 0x80, 0x00}, "non-minimal varint"},
		"negative accepted": {cat(opHead, []byte{0, 0}, opTail[:len(opTail)-3], []byte{1, 0, 0}), "negative accept time"},
		"trailing byte":     {cat(validOp(), []byte{0}), "1 trailing bytes"},
		"key too long":      {cat(opHead, uv(nil, 1<<40)), "length exceeds input"},
		"key past input":    {cat(opHead, []byte{5}, []byte("abc")), "length exceeds input"},
		"flags > uint32":    {cat(opHead, []byte{0, 0}, uv(nil, 1<<32), opTail[1:]), "flags overflow"},
		"varint overflow":   {cat(opHead, bytes.Repeat([]byte{0xff}, 10), []byte{1}), "varint overflows"},
		"truncated float":   {cat(opHead, []byte{0, 0}, opTail[:5]), "truncated"},
	}
	if _, err := proxy.DecodeOp(cat(opHead, []byte{0, 0}, opTail)); err != nil {
		t.Fatalf("the reject cases' frame does not decode: %v", err)
	}
	for name, c := range ops {
		if op, err := proxy.DecodeOp(c.in); !errors.Is(err, proxy.ErrBadEncoding) || !strings.Contains(err.Error(), c.why) {
			t.Errorf("DecodeOp(%s) = %+v, %v; want an error about %q", name, op, err, c.why)
		}
	}
	for i := range len(validOp()) {
		if _, err := proxy.DecodeOp(validOp()[:i]); !errors.Is(err, proxy.ErrBadEncoding) {
			t.Errorf("DecodeOp of a %d-byte prefix: %v", i, err)
		}
	}

	results := map[string]reject{
		"empty":             {nil, "truncated"},
		"bad version":       {cat([]byte{0}, validResult()[1:]), "unknown result version 0"},
		"version 2":         {cat([]byte{2}, validResult()[1:]), "unknown result version 2"},
		"unknown tag":       {[]byte{3, 2}, "unknown result tag 2"},
		"unknown status":    {[]byte{3, 0, byte(proxy.NotFound) + 1, 0}, "unknown status"},
		"flag bits 4":       {[]byte{3, 0, 0, 4}, "bad result flag bits"},
		"trailing byte":     {cat(validResult(), []byte{0}), "1 trailing bytes"},
		"value too long":    {cat(resHead, uv(nil, 1<<62)), "length exceeds input"},
		"huge values count": {cat(okHead, uv(nil, 1<<50)), "length exceeds input"},
		"values past input": {cat(okHead, uv(nil, 4), []byte{2, 'a', 0}), "truncated"},
		"unknown err code":  {cat([]byte{3, 1}, uv(nil, 200), []byte{0}), "unknown error code 200"},
		"err text past":     {[]byte{3, 1, 0, 10, 'x'}, "length exceeds input"},
		"err trailing":      {cat(proxy.AppendResult(nil, proxy.Result{}, errors.New("x")), []byte{0}), "1 trailing bytes"},
		"quorum truncated":  {[]byte{3, 1, 1, 2}, "truncated"},
	}
	for name, c := range results {
		if res, opErr, err := proxy.DecodeResult(c.in); !errors.Is(err, proxy.ErrBadEncoding) || !strings.Contains(err.Error(), c.why) || opErr != nil {
			t.Errorf("DecodeResult(%s) = %+v, %v, %v; want an error about %q", name, res, opErr, err, c.why)
		}
	}
	for _, full := range [][]byte{validResult(), proxy.AppendResult(nil, proxy.Result{}, fmt.Errorf("x: %w", &coordinator.QuorumError{Acks: 1, Need: 2}))} {
		for i := range len(full) {
			if _, _, err := proxy.DecodeResult(full[:i]); !errors.Is(err, proxy.ErrBadEncoding) {
				t.Errorf("DecodeResult of a %d-byte prefix: %v", i, err)
			}
		}
	}
}

// TestDecodeAllocationBounded: headers claiming huge lengths or counts make the
// decoders fail without allocating for them.
func TestDecodeAllocationBounded(t *testing.T) {
	okHead := proxy.AppendResult(nil, proxy.Result{}, nil)
	okHead = okHead[:len(okHead)-1] // up to the Values count
	inputs := [][]byte{
		append([]byte{4, byte(proxy.OpSet), 0, 0}, binary.AppendUvarint(nil, 1<<29)...),
		append(slices.Clone(okHead), binary.AppendUvarint(nil, 1<<29)...),
		append(slices.Clone(okHead), binary.AppendUvarint(nil, 1<<62)...),
		append([]byte{3, 1, 0}, binary.AppendUvarint(nil, 1<<29)...), // error text
	}
	var before, after runtime.MemStats
	const runs = 100
	runtime.ReadMemStats(&before)
	for range runs {
		for _, in := range inputs {
			_, _ = proxy.DecodeOp(in)
			_, _, _ = proxy.DecodeResult(in)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / (runs * uint64(len(inputs)) * 2); per > 4<<10 {
		t.Fatalf("a hostile header costs %d bytes per decode", per)
	}
}

// FuzzDecodeOp: DecodeOp never panics, fails only with ErrBadEncoding, and accepts
// only canonical encodings: re-encoding a decoded op gives the input back, and
// decoding that again gives the same op.
func FuzzDecodeOp(f *testing.F) {
	for _, k := range allKinds {
		f.Add(fullOp(k).AppendBinary(nil))
		f.Add(proxy.Op{Kind: k, Key: []byte("k"), Value: []byte{}}.AppendBinary(nil))
	}
	f.Add(proxy.Op{Kind: proxy.OpIncrFloat, Float: math.NaN()}.AppendBinary(nil))
	f.Add([]byte{})
	f.Add([]byte{4, 1, 0, 0x80, 0x00})
	f.Add(proxy.Op{Kind: proxy.OpSet, Accepted: math.MaxInt64}.AppendBinary(nil))
	f.Add(proxy.Op{Kind: proxy.OpSet, Accepted: -1}.AppendBinary(nil)) // refused
	f.Fuzz(func(t *testing.T, data []byte) {
		op, err := proxy.DecodeOp(data)
		if err != nil {
			if !errors.Is(err, proxy.ErrBadEncoding) {
				t.Fatalf("error does not wrap ErrBadEncoding: %v", err)
			}
			return
		}
		enc := op.AppendBinary(nil)
		if !bytes.Equal(enc, data) {
			t.Fatalf("accepted a non-canonical encoding:\n in % x\nout % x", data, enc)
		}
		op2, err := proxy.DecodeOp(enc)
		if err != nil {
			t.Fatalf("re-decoding: %v", err)
		}
		if !bytes.Equal(op2.AppendBinary(nil), enc) || (!math.IsNaN(op.Float) && !reflect.DeepEqual(op, op2)) {
			t.Fatalf("unstable round trip: %#v then %#v", op, op2)
		}
	})
}

// FuzzDecodeResult: as FuzzDecodeOp, for outcomes; a decoded op error keeps its
// identity through a second round trip.
func FuzzDecodeResult(f *testing.F) {
	for _, k := range allKinds {
		res := fullResult(proxy.Status(k % 5))
		f.Add(proxy.AppendResult(nil, res, nil))
	}
	f.Add(proxy.AppendResult(nil, proxy.Result{Values: [][]byte{}}, nil))
	for _, s := range sentinelErrors {
		f.Add(proxy.AppendResult(nil, proxy.Result{}, s))
		f.Add(proxy.AppendResult(nil, proxy.Result{}, fmt.Errorf("w: %w", s)))
	}
	f.Add(proxy.AppendResult(nil, proxy.Result{}, context.DeadlineExceeded))
	f.Add(proxy.AppendResult(nil, proxy.Result{}, context.Canceled))
	f.Add(proxy.AppendResult(nil, proxy.Result{}, &coordinator.QuorumError{Acks: 1, Need: 2}))
	f.Add(proxy.AppendResult(nil, proxy.Result{}, errors.New("other")))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, opErr, err := proxy.DecodeResult(data)
		if err != nil {
			if !errors.Is(err, proxy.ErrBadEncoding) || opErr != nil {
				t.Fatalf("bad failure: %v, %v", opErr, err)
			}
			return
		}
		if opErr != nil && !reflect.DeepEqual(res, proxy.Result{}) {
			t.Fatalf("both a result and an error: %+v, %v", res, opErr)
		}
		enc := proxy.AppendResult(nil, res, opErr)
		if !bytes.Equal(enc, data) {
			t.Fatalf("accepted a non-canonical encoding:\n in % x\nout % x", data, enc)
		}
		res2, opErr2, err := proxy.DecodeResult(enc)
		if err != nil {
			t.Fatalf("re-decoding: %v", err)
		}
		if !reflect.DeepEqual(res, res2) || (opErr == nil) != (opErr2 == nil) {
			t.Fatalf("unstable round trip: %#v, %v then %#v, %v", res, opErr, res2, opErr2)
		}
		if opErr == nil {
			return
		}
		if opErr.Error() != opErr2.Error() {
			t.Fatalf("text changed: %q then %q", opErr, opErr2)
		}
		for _, s := range append([]error{context.Canceled, context.DeadlineExceeded}, slices.Collect(maps.Values(sentinelErrors))...) {
			if errors.Is(opErr, s) != errors.Is(opErr2, s) {
				t.Fatalf("identity with %v changed", s)
			}
		}
		var q1, q2 *coordinator.QuorumError
		if errors.As(opErr, &q1) != errors.As(opErr2, &q2) || (q1 != nil && *q1 != *q2) {
			t.Fatalf("quorum error changed: %v then %v", q1, q2)
		}
	})
}

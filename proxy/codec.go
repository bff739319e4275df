package proxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/dynakv/dynakv/coordinator"
)

// The binary codec moves an Op to the node that coordinates it and the outcome back
// (see Router). Both encodings are canonical and strict:
//
//   - The first byte is a version; a decoder refuses versions, Kinds, Conds, Statuses,
//     flag bits and error codes it does not know.
//   - Integers are varints (zigzag for signed ones) in their shortest form; floats are
//     their 8 IEEE 754 bits, little endian, so every float (NaN included) survives.
//   - Every length and count is checked against the bytes that remain before anything
//     is sliced or allocated, so decoding allocates at most a small multiple of the
//     input, whatever a header claims. Trailing bytes are an error.
//   - Nil and empty slices are told apart (a byte slice is encoded as length+1, 0 for
//     nil; [][]byte likewise), so a decoded Op or Result is reflect.DeepEqual to the
//     encoded one and a forwarded DGET answers exactly what a local one does. Strings
//     have no nil: Context and error texts are a plain length and bytes.
//
// Hence decoding succeeds only on bytes the encoder produces, and re-encoding a
// decoded value gives the same bytes. Decoded values do not alias the input: the
// decoder copies it once and slices that copy, so callers may reuse their buffer.

// Encoding versions. Op version 2 added Accepted, version 3 CondCAS, Vivify,
// VivifyExpiry and Initial, version 4 dropped the DeferSync and Last flags; result
// version 2 added Created, version 3 dropped Durable (a forwarded op is durable
// before the node that ran it answers: see DoLocal). A decoder refuses
// older versions (the internode protocol does not mix versions: see cluster's
// handshake).
const (
	opVersion     = 4
	resultVersion = 3
)

// maxFieldLen bounds every length and count, beyond being bounded by the input: it
// keeps lengths far from int overflow on every platform.
const maxFieldLen = 1 << 30

// ErrBadEncoding is wrapped by every DecodeOp and DecodeResult failure.
var ErrBadEncoding = errors.New("proxy: invalid encoding")

// Op flag bits.
const (
	opKeepTTL = 1 << iota
	opPersist
	opSetExpiry
	opReturnOld
	opDecr
	opPrepend
	opLocal
	opVivify
	opAllFlags = 1<<iota - 1
)

// AppendBinary appends the binary form of op: version, Kind, Cond, the bool fields
// as flag bits, then Key, Value, Flags, Expiry, CAS, Delta, UDelta, Float, Offset,
// Context, R, W, Accepted (never negative), VivifyExpiry and Initial, every field
// always present.
func (op Op) AppendBinary(b []byte) []byte {
	var f uint64
	for _, x := range []struct {
		set bool
		bit uint64
	}{
		{op.KeepTTL, opKeepTTL}, {op.Persist, opPersist}, {op.SetExpiry, opSetExpiry},
		{op.ReturnOld, opReturnOld}, {op.Decr, opDecr}, {op.Prepend, opPrepend},
		{op.Local, opLocal}, {op.Vivify, opVivify},
	} {
		if x.set {
			f |= x.bit
		}
	}
	b = append(b, opVersion, byte(op.Kind), byte(op.Cond))
	b = binary.AppendUvarint(b, f)
	b = appendBytes(b, op.Key)
	b = appendBytes(b, op.Value)
	b = binary.AppendUvarint(b, uint64(op.Flags))
	b = binary.AppendVarint(b, op.Expiry)
	b = binary.AppendUvarint(b, op.CAS)
	b = binary.AppendVarint(b, op.Delta)
	b = binary.AppendUvarint(b, op.UDelta)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(op.Float))
	b = binary.AppendVarint(b, op.Offset)
	b = appendString(b, op.Context)
	b = binary.AppendVarint(b, int64(op.R))
	b = binary.AppendVarint(b, int64(op.W))
	b = binary.AppendVarint(b, op.Accepted)
	b = binary.AppendVarint(b, op.VivifyExpiry)
	return binary.AppendUvarint(b, op.Initial)
}

// DecodeOp decodes an Op written by Op.AppendBinary. Errors wrap ErrBadEncoding.
func DecodeOp(b []byte) (Op, error) {
	d := newDecoder(b)
	if v := d.byte(); d.bad == "" && v != opVersion {
		d.fail(fmt.Sprintf("unknown op version %d", v))
	}
	var op Op
	op.Kind = Kind(d.byte())
	if d.bad == "" && (op.Kind < OpGet || op.Kind > OpSetBit) {
		d.fail(fmt.Sprintf("unknown kind %d", op.Kind))
	}
	op.Cond = Cond(d.byte())
	if d.bad == "" && op.Cond > CondCAS {
		d.fail(fmt.Sprintf("unknown cond %d", op.Cond))
	}
	f := d.uvarint()
	if f&^opAllFlags != 0 {
		d.fail("unknown op flags")
	}
	op.KeepTTL, op.Persist, op.SetExpiry = f&opKeepTTL != 0, f&opPersist != 0, f&opSetExpiry != 0
	op.ReturnOld, op.Decr, op.Prepend = f&opReturnOld != 0, f&opDecr != 0, f&opPrepend != 0
	op.Local, op.Vivify = f&opLocal != 0, f&opVivify != 0
	op.Key = d.bytes()
	op.Value = d.bytes()
	op.Flags = d.uint32()
	op.Expiry = d.varint()
	op.CAS = d.uvarint()
	op.Delta = d.varint()
	op.UDelta = d.uvarint()
	op.Float = d.float()
	op.Offset = d.varint()
	op.Context = d.string()
	op.R = d.int()
	op.W = d.int()
	if op.Accepted = d.varint(); op.Accepted < 0 {
		d.fail("negative accept time")
	}
	op.VivifyExpiry = d.varint()
	op.Initial = d.uvarint()
	if err := d.finish("op"); err != nil {
		return Op{}, err
	}
	return op, nil
}

// Result tags.
const (
	resultOK    = 0
	resultError = 1
)

// Error codes on the wire. Codes are never reused or renumbered: add new ones at the
// end of wireSentinels.
const (
	codeOther         = 0 // any other error: its text only
	codeQuorum        = 1 // *coordinator.QuorumError: Acks, Need, text
	codeFirstSentinel = 2 // wireSentinels[code-codeFirstSentinel]: text
)

// wireSentinels are the errors that keep their identity across the codec: the
// errors front ends map to wire text. Append only.
var wireSentinels = []error{
	ErrNotInteger,
	ErrOverflow,
	ErrNotFloat,
	ErrNaN,
	ErrNonNumeric,
	ErrValueTooBig,
	ErrBadContext,
	ErrBadOffset,
	ErrUnknownOp,
	ErrInvalidFlush,
	ErrRunLocally,
	ErrBadEncoding,
	context.DeadlineExceeded,
	context.Canceled,
	ErrOutcomeUnknown, // codes only grow: new sentinels go last
	ErrNoSuchKey,
	ErrSameKey,
	coordinator.ErrLate, // wraps context.DeadlineExceeded: see wireFirst
	ErrOOM,
	coordinator.ErrSealed,
	ErrWouldBlock, // Try's, which is never forwarded: listed so that no exported error escapes the table
	ErrMayHaveRun, // the router's, to this node's proxy; never sent either
}

// wireFirst are the sentinels that wrap another one of wireSentinels: an error
// matching them is encoded as them, not as the more general sentinel listed first.
var wireFirst = []error{coordinator.ErrLate}

// AppendResult appends the binary form of the outcome of Do: res when err is nil,
// otherwise err alone (res is then ignored, as callers ignore it).
//
// An error keeps its identity when it is, or wraps, one of the package's sentinel
// errors (ErrNotInteger, ..., ErrRunLocally, ErrBadEncoding), context.Canceled,
// context.DeadlineExceeded or coordinator.ErrLate: the decoded error satisfies
// errors.Is with it (and ErrLate's with context.DeadlineExceeded too). A
// *coordinator.QuorumError decodes to one with the same Acks and Need (errors.As
// finds it). The text is kept: when it is the target's own text, the decoded error is
// the sentinel itself (or a fresh *QuorumError); otherwise it is an error with the
// original text that unwraps to the target. Any other error decodes to an error with
// the same text. An error matching several targets keeps only the first one: a
// QuorumError, then coordinator.ErrLate, then the sentinels in the order above.
func AppendResult(b []byte, res Result, err error) []byte {
	b = append(b, resultVersion)
	if err != nil {
		b = append(b, resultError)
		var qe *coordinator.QuorumError
		code := uint64(codeOther)
		if errors.As(err, &qe) && qe != nil {
			code = codeQuorum
		} else {
			for _, s := range slices.Concat(wireFirst, wireSentinels) {
				if errors.Is(err, s) {
					code = uint64(codeFirstSentinel + slices.Index(wireSentinels, s))
					break
				}
			}
		}
		b = binary.AppendUvarint(b, code)
		if code == codeQuorum {
			b = binary.AppendVarint(b, int64(qe.Acks))
			b = binary.AppendVarint(b, int64(qe.Need))
		}
		return appendString(b, err.Error())
	}
	b = append(b, resultOK, byte(res.Status))
	var bits byte // bit 0: Found, bit 1: Created
	if res.Found {
		bits |= 1
	}
	if res.Created {
		bits |= 2
	}
	b = append(b, bits)
	b = appendBytes(b, res.Item.Value)
	b = binary.AppendUvarint(b, uint64(res.Item.Flags))
	b = binary.AppendVarint(b, res.Item.Expiry)
	b = binary.AppendUvarint(b, res.Item.CAS)
	b = binary.AppendVarint(b, int64(res.Item.Siblings))
	b = binary.AppendVarint(b, res.Int)
	b = binary.AppendUvarint(b, res.Uint)
	b = appendBytes(b, res.Float)
	b = binary.AppendUvarint(b, res.CAS)
	b = appendString(b, res.Context)
	if res.Values == nil {
		return append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(res.Values))+1)
	for _, v := range res.Values {
		b = appendBytes(b, v)
	}
	return b
}

// DecodeResult decodes an outcome written by AppendResult: the Result and the op's
// error (at most one of them set), or a decode error wrapping ErrBadEncoding.
func DecodeResult(b []byte) (Result, error, error) {
	d := newDecoder(b)
	if v := d.byte(); d.bad == "" && v != resultVersion {
		d.fail(fmt.Sprintf("unknown result version %d", v))
	}
	switch tag := d.byte(); {
	case d.bad != "":
	case tag == resultError:
		opErr := d.opError()
		if err := d.finish("result"); err != nil {
			return Result{}, nil, err
		}
		return Result{}, opErr, nil
	case tag != resultOK:
		d.fail(fmt.Sprintf("unknown result tag %d", tag))
	}
	var res Result
	res.Status = Status(d.byte())
	if d.bad == "" && res.Status > NotFound {
		d.fail(fmt.Sprintf("unknown status %d", res.Status))
	}
	switch bits := d.byte(); {
	case d.bad != "":
	case bits > 3:
		d.fail("bad result flag bits")
	default:
		res.Found, res.Created = bits&1 != 0, bits&2 != 0
	}
	res.Item.Value = d.bytes()
	res.Item.Flags = d.uint32()
	res.Item.Expiry = d.varint()
	res.Item.CAS = d.uvarint()
	res.Item.Siblings = d.int()
	res.Int = d.varint()
	res.Uint = d.uvarint()
	res.Float = d.bytes()
	res.CAS = d.uvarint()
	res.Context = d.string()
	if n, ok := d.count(); ok {
		res.Values = make([][]byte, 0, n)
		for i := 0; i < n && d.bad == ""; i++ {
			res.Values = append(res.Values, d.bytes())
		}
	}
	if err := d.finish("result"); err != nil {
		return Result{}, nil, err
	}
	return res, nil, nil
}

// opError decodes the error half of a result.
func (d *decoder) opError() error {
	code := d.uvarint()
	var target error
	switch {
	case d.bad != "":
		return nil
	case code == codeOther:
	case code == codeQuorum:
		target = &coordinator.QuorumError{Acks: d.int(), Need: d.int()}
	case code-codeFirstSentinel < uint64(len(wireSentinels)):
		target = wireSentinels[code-codeFirstSentinel]
	default:
		d.fail(fmt.Sprintf("unknown error code %d", code))
		return nil
	}
	text := d.string()
	switch {
	case d.bad != "":
		return nil
	case target == nil:
		return errors.New(text)
	case text == target.Error():
		return target
	}
	return &remoteError{text: text, target: target}
}

// remoteError is an error that came back from another node: its original text,
// unwrapping to the sentinel (or QuorumError) it wrapped there.
type remoteError struct {
	text   string
	target error
}

func (e *remoteError) Error() string { return e.text }
func (e *remoteError) Unwrap() error { return e.target }

func appendBytes(b, v []byte) []byte {
	if v == nil {
		return append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(v))+1)
	return append(b, v...)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decoder reads the codec's fields from a private copy of the input and remembers the
// first failure, so decoding code reads straight through and checks once.
type decoder struct {
	b   []byte
	bad string
}

func newDecoder(b []byte) *decoder {
	owned := make([]byte, len(b)) // never nil: slices of it are non-nil too
	copy(owned, b)
	return &decoder{b: owned}
}

func (d *decoder) fail(why string) {
	if d.bad == "" {
		d.bad = why
	}
}

// finish reports the first failure, or trailing bytes.
func (d *decoder) finish(what string) error {
	if d.bad == "" && len(d.b) != 0 {
		d.fail(fmt.Sprintf("%d trailing bytes", len(d.b)))
	}
	if d.bad != "" {
		return fmt.Errorf("%w: %s: %s", ErrBadEncoding, what, d.bad)
	}
	return nil
}

func (d *decoder) byte() byte {
	if d.bad != "" {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

// uvarint reads a varint in its shortest form.
func (d *decoder) uvarint() uint64 {
	if d.bad != "" {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	switch {
	case n == 0:
		d.fail("truncated")
		return 0
	case n < 0:
		d.fail("varint overflows 64 bits")
		return 0
	case n > 1 && d.b[n-1] == 0:
		d.fail("non-minimal varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// varint reads a zigzag varint in its shortest form.
func (d *decoder) varint() int64 {
	u := d.uvarint()
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x
}

func (d *decoder) int() int {
	v := d.varint()
	if int64(int(v)) != v {
		d.fail("integer overflows int")
		return 0
	}
	return int(v)
}

func (d *decoder) uint32() uint32 {
	v := d.uvarint()
	if v > math.MaxUint32 {
		d.fail("flags overflow uint32")
		return 0
	}
	return uint32(v)
}

func (d *decoder) float() float64 {
	if d.bad != "" {
		return 0
	}
	if len(d.b) < 8 {
		d.fail("truncated")
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return math.Float64frombits(v)
}

// length reads a length and checks it against the remaining input.
func (d *decoder) length(n uint64) (int, bool) {
	if d.bad != "" {
		return 0, false
	}
	if n > uint64(len(d.b)) || n > maxFieldLen {
		d.fail("length exceeds input")
		return 0, false
	}
	return int(n), true
}

// take returns the next n bytes, capacity-limited so appends never reach past them.
func (d *decoder) take(n int) []byte {
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

// bytes reads a byte slice written by appendBytes: nil, or length-1 bytes.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n == 0 {
		return nil
	}
	l, ok := d.length(n - 1)
	if !ok {
		return nil
	}
	return d.take(l)
}

func (d *decoder) string() string {
	l, ok := d.length(d.uvarint())
	if !ok {
		return ""
	}
	return string(d.take(l))
}

// count reads a slice count written as count+1 (0 for nil) and refuses one the
// remaining input cannot hold at one byte per element; ok is false for nil.
func (d *decoder) count() (int, bool) {
	n := d.uvarint()
	if n == 0 {
		return 0, false
	}
	return d.length(n - 1)
}

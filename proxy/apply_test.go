package proxy

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/dynakv/dynakv/coordinator"
	"github.com/dynakv/dynakv/storage"
	"github.com/dynakv/dynakv/vclock"
)

// TestAppliers drives each read-modify-write Kind's applier on its own: the item
// it finds, the decision (status, or no write, or an error) and the value it
// writes. The end-to-end tests (proxy_test.go) run the same rules through the
// coordinator; these pin the rules moved here from memcache/ (CondCAS on every kind
// that takes it, the decr floor, cas 0) and the table dispatch itself.
func TestAppliers(t *testing.T) {
	const now = 1_000_000
	item := func(v string, flags uint32, exp int64, cas uint64) Item {
		return Item{Value: []byte(v), Flags: flags, Expiry: exp, CAS: cas, Siblings: 1}
	}
	cur := item("10", 7, now+5000, 42)
	tests := []struct {
		name   string
		op     Op
		it     Item
		found  bool
		status Status
		write  *vclock.Value // nil: no write
		err    error
		uint   uint64
		int    int64
	}{
		// OpSet with CondCAS: memcached cas, ms C.
		{name: "set cas match", op: Op{Kind: OpSet, Value: []byte("v"), Cond: CondCAS, CAS: 42}, it: cur, found: true,
			status: Stored, write: &vclock.Value{Data: []byte("v")}},
		{name: "set cas mismatch", op: Op{Kind: OpSet, Value: []byte("v"), Cond: CondCAS, CAS: 41}, it: cur, found: true, status: Exists},
		{name: "set cas missing", op: Op{Kind: OpSet, Value: []byte("v"), Cond: CondCAS, CAS: 41}, status: NotFound},
		{name: "set cas 0 on existing", op: Op{Kind: OpSet, Value: []byte("v"), Cond: CondCAS}, it: cur, found: true, status: Exists},
		{name: "set cas 0 matches no item", op: Op{Kind: OpSet, Value: []byte("v"), Cond: CondCAS}, it: item("x", 0, 0, 0), found: true, status: Exists},
		{name: "set cas 0 on missing", op: Op{Kind: OpSet, Value: []byte("v"), Cond: CondCAS}, status: NotFound},
		{name: "set CAS without CondCAS is no condition", op: Op{Kind: OpSet, Value: []byte("v"), CAS: 41}, it: cur, found: true,
			status: Stored, write: &vclock.Value{Data: []byte("v")}},

		// OpDelete with CondCAS: md C.
		{name: "delete cas match", op: Op{Kind: OpDelete, Cond: CondCAS, CAS: 42}, it: cur, found: true,
			status: Stored, write: &vclock.Value{Tombstone: true}},
		{name: "delete cas mismatch", op: Op{Kind: OpDelete, Cond: CondCAS, CAS: 1}, it: cur, found: true, status: Exists},
		{name: "delete cas 0", op: Op{Kind: OpDelete, Cond: CondCAS}, it: cur, found: true, status: Exists},
		{name: "delete cas missing", op: Op{Kind: OpDelete, Cond: CondCAS}, status: NotFound},

		// OpAppend: memcached append/prepend, ms in append mode with C.
		{name: "append cas match keeps flags and expiry", op: Op{Kind: OpAppend, Value: []byte("5"), Cond: CondCAS, CAS: 42}, it: cur, found: true,
			status: Stored, write: &vclock.Value{Data: []byte("105"), Flags: 7, Expiry: now + 5000}, int: 3},
		{name: "prepend cas match", op: Op{Kind: OpAppend, Value: []byte("5"), Prepend: true, Cond: CondCAS, CAS: 42}, it: cur, found: true,
			status: Stored, write: &vclock.Value{Data: []byte("510"), Flags: 7, Expiry: now + 5000}, int: 3},
		{name: "append cas mismatch", op: Op{Kind: OpAppend, Value: []byte("5"), Cond: CondCAS, CAS: 1}, it: cur, found: true, status: Exists},
		{name: "append cas on missing is not stored", op: Op{Kind: OpAppend, Value: []byte("5"), Cond: CondCAS, CAS: 1}, status: NotStored},
		{name: "append XX on missing", op: Op{Kind: OpAppend, Value: []byte("5"), Cond: CondXX}, status: NotStored},
		{name: "append creates (Redis)", op: Op{Kind: OpAppend, Value: []byte("5")},
			status: Stored, write: &vclock.Value{Data: []byte("5")}, int: 1},
		{name: "append too big", op: Op{Kind: OpAppend, Value: make([]byte, 63), Cond: CondCAS, CAS: 42}, it: cur, found: true, err: ErrValueTooBig},

		// OpIncrUnsigned: memcached incr/decr, ma with C.
		{name: "incr", op: Op{Kind: OpIncrUnsigned, UDelta: 5}, it: cur, found: true,
			status: Stored, write: &vclock.Value{Data: []byte("15"), Flags: 7, Expiry: now + 5000}, uint: 15},
		{name: "incr wraps", op: Op{Kind: OpIncrUnsigned, UDelta: 1}, it: item("18446744073709551615", 0, 0, 1), found: true,
			status: Stored, write: &vclock.Value{Data: []byte("0")}, uint: 0},
		{name: "decr floor at 0", op: Op{Kind: OpIncrUnsigned, UDelta: 11, Decr: true}, it: cur, found: true,
			status: Stored, write: &vclock.Value{Data: []byte("0"), Flags: 7, Expiry: now + 5000}, uint: 0},
		{name: "decr to exactly 0", op: Op{Kind: OpIncrUnsigned, UDelta: 10, Decr: true}, it: cur, found: true,
			status: Stored, write: &vclock.Value{Data: []byte("0"), Flags: 7, Expiry: now + 5000}, uint: 0},
		{name: "decr of a value with trailing spaces", op: Op{Kind: OpIncrUnsigned, UDelta: 1, Decr: true}, it: item("10  ", 0, 0, 1), found: true,
			status: Stored, write: &vclock.Value{Data: []byte("9")}, uint: 9},
		{name: "incr cas match", op: Op{Kind: OpIncrUnsigned, UDelta: 1, Cond: CondCAS, CAS: 42}, it: cur, found: true,
			status: Stored, write: &vclock.Value{Data: []byte("11"), Flags: 7, Expiry: now + 5000}, uint: 11},
		{name: "decr cas match floors", op: Op{Kind: OpIncrUnsigned, UDelta: 99, Decr: true, Cond: CondCAS, CAS: 42}, it: cur, found: true,
			status: Stored, write: &vclock.Value{Data: []byte("0"), Flags: 7, Expiry: now + 5000}, uint: 0},
		{name: "incr cas mismatch", op: Op{Kind: OpIncrUnsigned, UDelta: 1, Cond: CondCAS, CAS: 1}, it: cur, found: true, status: Exists},
		{name: "incr cas missing", op: Op{Kind: OpIncrUnsigned, UDelta: 1, Cond: CondCAS, CAS: 1}, status: NotFound},
		{name: "incr cas mismatch before non-numeric", op: Op{Kind: OpIncrUnsigned, UDelta: 1, Cond: CondCAS, CAS: 1}, it: item("x", 0, 0, 2), found: true, status: Exists},
		{name: "incr cas non-numeric", op: Op{Kind: OpIncrUnsigned, UDelta: 1, Cond: CondCAS, CAS: 2}, it: item("x", 0, 0, 2), found: true, err: ErrNonNumeric},
		{name: "incr missing", op: Op{Kind: OpIncrUnsigned, UDelta: 1}, status: NotFound},

		// The other kinds, through the same table.
		{name: "incr signed", op: Op{Kind: OpIncr, Delta: -11}, it: cur, found: true,
			status: Stored, write: &vclock.Value{Data: []byte("-1"), Flags: 7, Expiry: now + 5000}, int: -1},
		{name: "incr signed overflow", op: Op{Kind: OpIncr, Delta: math.MaxInt64}, it: cur, found: true, err: ErrOverflow},
		{name: "incrbyfloat", op: Op{Kind: OpIncrFloat, Float: 0.5}, it: cur, found: true,
			status: Stored, write: &vclock.Value{Data: []byte("10.5"), Flags: 7, Expiry: now + 5000}},
		{name: "getex past expiry deletes", op: Op{Kind: OpGetEx, SetExpiry: true, Expiry: now}, it: cur, found: true,
			status: Stored, write: &vclock.Value{Tombstone: true}},
		{name: "expire GT without ttl", op: Op{Kind: OpExpire, Cond: CondGT, Expiry: now + 1}, it: item("v", 0, 0, 1), found: true, status: NotStored},
		{name: "persist without ttl", op: Op{Kind: OpExpire, Persist: true}, it: item("v", 0, 0, 1), found: true, status: NotStored},
		{name: "setrange", op: Op{Kind: OpSetRange, Offset: 3, Value: []byte("x")}, it: cur, found: true,
			status: Stored, write: &vclock.Value{Data: []byte("10\x00x"), Flags: 7, Expiry: now + 5000}, int: 4},
		{name: "setbit", op: Op{Kind: OpSetBit, Offset: 7, Delta: 1}, status: Stored, write: &vclock.Value{Data: []byte{1}}},
		{name: "get is no read-modify-write", op: Op{Kind: OpGet}, err: ErrUnknownOp},
		{name: "unknown kind", op: Op{Kind: 200}, err: ErrUnknownOp},
	}
	p := New(Config{MaxValueBytes: 64}, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := tt.op
			op.Accepted = now
			var res Result
			v, err := p.apply(op, tt.it, tt.found, &res)
			switch {
			case tt.err != nil:
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			case tt.write == nil:
				if !errors.Is(err, errNoWrite) {
					t.Fatalf("err = %v, wrote %+v; want no write", err, v)
				}
			case err != nil:
				t.Fatalf("err = %v", err)
			case !v.Equal(*tt.write):
				t.Fatalf("writes %+v, want %+v", v, *tt.write)
			}
			if res.Status != tt.status {
				t.Fatalf("status = %d, want %d", res.Status, tt.status)
			}
			if res.Uint != tt.uint || res.Int != tt.int {
				t.Fatalf("Uint, Int = %d, %d; want %d, %d", res.Uint, res.Int, tt.uint, tt.int)
			}
			if tt.write != nil && writesItem(op.Kind) && string(res.Item.Value) != string(tt.write.Data) {
				t.Fatalf("Item.Value = %q, want the written %q", res.Item.Value, tt.write.Data)
			}
		})
	}
}

func TestParseCounter(t *testing.T) {
	for in, want := range map[string]int64{"12": 12, "12  ": 12, "0": 0, " 1": -1, "": -1, "1a": -1, "18446744073709551616": -1} {
		v, ok := parseCounter([]byte(in))
		if ok != (want >= 0) || (ok && int64(v) != want) {
			t.Errorf("parseCounter(%q) = %d, %v", in, v, ok)
		}
	}
}

// TestTryErrReasons: each of the coordinator's would-block reasons maps to
// Try's own, a quorum request to ReasonQuorum (not to a busy lock).
func TestTryErrReasons(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("%w: %w", coordinator.ErrWouldBlock, coordinator.ErrQuorum), ReasonQuorum},
		{fmt.Errorf("%w: %w", coordinator.ErrWouldBlock, storage.ErrSetFull), ReasonSetFull},
		{fmt.Errorf("%w: %w", coordinator.ErrWouldBlock, storage.ErrLockBusy), ReasonLockBusy},
	} {
		var wb *WouldBlock
		if err := tryErr(tc.err); !errors.As(err, &wb) || wb.Reason != tc.want {
			t.Errorf("tryErr(%v) = %v, want reason %s", tc.err, err, tc.want)
		}
	}
}

package proxy

import (
	"fmt"
	"math"
	"strconv"

	"github.com/dynakv/dynakv/coordinator"
	"github.com/dynakv/dynakv/internal/num"
	"github.com/dynakv/dynakv/vclock"
)

// The read-modify-write kinds, one function each. An applier decides op on the
// key's current item (found false: the key is absent, see resolve) at op.Accepted:
// it fills res and returns the value to write, or errNoWrite to write nothing, or
// an error that fails the op. Appliers are pure: no I/O, no clock but op.Accepted,
// so modify may run one several times (the coordinator retries a Modify whose
// record changed underneath it).

var errNoWrite = coordinator.ErrNoWrite

type applier func(p *Proxy, op Op, it Item, found bool, res *Result) (vclock.Value, error)

// appliers maps each read-modify-write Kind to its applier; the other Kinds (reads,
// DPUT, DDEL) have none.
var appliers = [...]applier{
	OpSet:          (*Proxy).applySet,
	OpDelete:       (*Proxy).applyDelete,
	OpGetDel:       (*Proxy).applyDelete,
	OpGetEx:        (*Proxy).applyGetEx,
	OpExpire:       (*Proxy).applyExpire,
	OpIncr:         (*Proxy).applyIncr,
	OpIncrFloat:    (*Proxy).applyIncrFloat,
	OpIncrUnsigned: (*Proxy).applyIncrUnsigned,
	OpAppend:       (*Proxy).applyAppend,
	OpSetRange:     (*Proxy).applySetRange,
	OpSetBit:       (*Proxy).applySetBit,
}

// applierOf returns kind's applier, nil when kind is not a read-modify-write.
func applierOf(kind Kind) applier {
	if int(kind) < len(appliers) {
		return appliers[kind]
	}
	return nil
}

// apply decides op on the current item with its Kind's applier.
func (p *Proxy) apply(op Op, it Item, found bool, res *Result) (vclock.Value, error) {
	if f := applierOf(op.Kind); f != nil {
		return f(p, op, it, found, res)
	}
	return vclock.Value{}, fmt.Errorf("%w: %d", ErrUnknownOp, op.Kind)
}

// casFails checks a CondCAS condition: it returns missing when the key is absent,
// Exists when its cas unique is not op.CAS (0 matches no item), 0 when the condition
// holds or op has none.
func casFails(op Op, it Item, found bool, missing Status) Status {
	switch {
	case op.Cond != CondCAS:
		return 0
	case !found:
		return missing
	case op.CAS == 0 || op.CAS != it.CAS:
		return Exists
	}
	return 0
}

// noWrite ends an applier that decided not to write, with status st.
func noWrite(res *Result, st Status) (vclock.Value, error) {
	res.Status = st
	return vclock.Value{}, errNoWrite
}

// applySet: SET and its options, memcached set/add/replace/cas.
func (p *Proxy) applySet(op Op, it Item, found bool, res *Result) (vclock.Value, error) {
	if op.ReturnOld {
		res.Found, res.Item = found, it
	}
	if st := casFails(op, it, found, NotFound); st != 0 {
		return noWrite(res, st)
	}
	if op.Cond == CondNX && found || op.Cond == CondXX && !found {
		return noWrite(res, NotStored)
	}
	if len(op.Value) > p.cfg.MaxValueBytes {
		return vclock.Value{}, ErrValueTooBig
	}
	v := vclock.Value{Data: op.Value, Flags: op.Flags, Expiry: op.Expiry}
	if op.KeepTTL && found {
		v.Expiry = it.Expiry
	}
	res.Status = Stored
	return v, nil
}

// applyDelete: DEL, GETDEL, memcached delete (with a cas: md C).
func (p *Proxy) applyDelete(op Op, it Item, found bool, res *Result) (vclock.Value, error) {
	res.Found, res.Item = found, it
	if !found {
		return noWrite(res, NotFound)
	}
	if st := casFails(op, it, found, NotFound); st != 0 {
		return noWrite(res, st)
	}
	res.Status = Stored
	return vclock.Value{Tombstone: true}, nil
}

// applyGetEx: GETEX, memcached touch and gat.
func (p *Proxy) applyGetEx(op Op, it Item, found bool, res *Result) (vclock.Value, error) {
	res.Found, res.Item = found, it
	if !found || !op.SetExpiry {
		return vclock.Value{}, errNoWrite
	}
	res.Status = Stored
	return withExpiry(it, op), nil
}

// applyExpire: EXPIRE and its family, PERSIST.
func (p *Proxy) applyExpire(op Op, it Item, found bool, res *Result) (vclock.Value, error) {
	switch {
	case !found:
		return noWrite(res, NotFound)
	case op.Persist && it.Expiry == 0, !op.Persist && !expireCondHolds(op.Cond, it.Expiry, op.Expiry):
		return noWrite(res, NotStored)
	}
	res.Status = Stored
	return withExpiry(it, op), nil
}

// applyIncr: INCR, DECR, INCRBY, DECRBY (signed 64-bit, overflow is an error).
func (p *Proxy) applyIncr(op Op, it Item, found bool, res *Result) (vclock.Value, error) {
	var cur int64
	if found {
		n, ok := num.ParseInt(it.Value)
		if !ok {
			return vclock.Value{}, ErrNotInteger
		}
		cur = n
	}
	if (op.Delta > 0 && cur > math.MaxInt64-op.Delta) || (op.Delta < 0 && cur < math.MinInt64-op.Delta) {
		return vclock.Value{}, ErrOverflow
	}
	res.Int = cur + op.Delta
	return written(res, rewrite(it, found, strconv.AppendInt(nil, res.Int, 10))), nil
}

// applyIncrFloat: INCRBYFLOAT.
func (p *Proxy) applyIncrFloat(op Op, it Item, found bool, res *Result) (vclock.Value, error) {
	var cur float64
	if found {
		f, ok := num.ParseFloat(it.Value)
		if !ok || math.IsInf(f, 0) { // a stored infinity is not a float to add to
			return vclock.Value{}, ErrNotFloat
		}
		cur = f
	}
	n := cur + op.Float
	if math.IsNaN(n) || math.IsInf(n, 0) {
		return vclock.Value{}, ErrNaN
	}
	res.Float = FormatFloat(n)
	return written(res, rewrite(it, found, res.Float)), nil
}

// applyIncrUnsigned: memcached incr and decr (and ma): unsigned 64-bit, incr wraps
// at 2^64, decr stops at 0; the key must exist; with CondCAS only while its cas
// unique is op.CAS.
func (p *Proxy) applyIncrUnsigned(op Op, it Item, found bool, res *Result) (vclock.Value, error) {
	if !found {
		return noWrite(res, NotFound)
	}
	if st := casFails(op, it, found, NotFound); st != 0 {
		return noWrite(res, st)
	}
	cur, ok := parseCounter(it.Value)
	if !ok {
		return vclock.Value{}, ErrNonNumeric
	}
	res.Uint = addCounter(cur, op.UDelta, op.Decr)
	return written(res, rewrite(it, found, strconv.AppendUint(nil, res.Uint, 10))), nil
}

// addCounter applies a memcached incr (wrapping at 2^64) or decr (never below zero).
func addCounter(cur, delta uint64, decr bool) uint64 {
	switch {
	case !decr:
		return cur + delta
	case delta > cur:
		return 0
	}
	return cur - delta
}

// applyAppend: APPEND, memcached append and prepend (and ms in those modes). With
// CondXX or CondCAS the key must exist (NotStored otherwise); with CondCAS its cas
// unique must be op.CAS (Exists otherwise).
func (p *Proxy) applyAppend(op Op, it Item, found bool, res *Result) (vclock.Value, error) {
	if !found && (op.Cond == CondXX || op.Cond == CondCAS) {
		return noWrite(res, NotStored)
	}
	if st := casFails(op, it, found, NotStored); st != 0 {
		return noWrite(res, st)
	}
	if len(it.Value)+len(op.Value) > p.cfg.MaxValueBytes {
		return vclock.Value{}, ErrValueTooBig
	}
	data := make([]byte, 0, len(it.Value)+len(op.Value))
	if op.Prepend {
		data = append(append(data, op.Value...), it.Value...)
	} else {
		data = append(append(data, it.Value...), op.Value...)
	}
	res.Int = int64(len(data))
	return written(res, rewrite(it, found, data)), nil
}

// applySetRange: SETRANGE.
func (p *Proxy) applySetRange(op Op, it Item, found bool, res *Result) (vclock.Value, error) {
	if op.Offset < 0 {
		return vclock.Value{}, ErrBadOffset
	}
	if len(op.Value) == 0 {
		// Redis: nothing to write; reply with the current length, create nothing.
		res.Int = int64(len(it.Value))
		return vclock.Value{}, errNoWrite
	}
	if op.Offset > int64(p.cfg.MaxValueBytes)-int64(len(op.Value)) { // no overflow for huge offsets
		return vclock.Value{}, ErrValueTooBig
	}
	end := op.Offset + int64(len(op.Value))
	data := make([]byte, max(int64(len(it.Value)), end))
	copy(data, it.Value)
	copy(data[op.Offset:], op.Value)
	res.Int = int64(len(data))
	return written(res, rewrite(it, found, data)), nil
}

// applySetBit: SETBIT.
func (p *Proxy) applySetBit(op Op, it Item, found bool, res *Result) (vclock.Value, error) {
	if op.Offset < 0 || op.Delta&^1 != 0 {
		return vclock.Value{}, ErrBadOffset
	}
	byteAt, mask := op.Offset>>3, byte(1)<<(7-op.Offset&7)
	if byteAt >= int64(p.cfg.MaxValueBytes) {
		return vclock.Value{}, ErrValueTooBig
	}
	grows := byteAt >= int64(len(it.Value))
	if !grows && it.Value[byteAt]&mask != 0 {
		res.Int = 1
	}
	if found && !grows && res.Int == op.Delta {
		res.Found, res.Item = true, it // Redis writes nothing when the bit stays
		return vclock.Value{}, errNoWrite
	}
	data := make([]byte, max(int64(len(it.Value)), byteAt+1))
	copy(data, it.Value)
	data[byteAt] = data[byteAt]&^mask | byte(op.Delta)*mask
	return written(res, rewrite(it, found, data)), nil
}

// written records v, the value an OpIncr*, OpAppend, OpSetRange or OpSetBit stores,
// as res.Item (the item after the write; modify fills in its CAS) with status
// Stored, and returns v.
func written(res *Result, v vclock.Value) vclock.Value {
	res.Status, res.Found = Stored, true
	res.Item = Item{Value: v.Data, Flags: v.Flags, Expiry: v.Expiry, Siblings: 1}
	return v
}

// writesItem reports whether Result.Item is the item after the write for kind.
func writesItem(kind Kind) bool {
	switch kind {
	case OpIncr, OpIncrFloat, OpIncrUnsigned, OpAppend, OpSetRange, OpSetBit:
		return true
	}
	return false
}

// rewrite returns the value a read-modify-write stores: new data, keeping the current
// item's flags and expiry.
func rewrite(it Item, found bool, data []byte) vclock.Value {
	if !found {
		return vclock.Value{Data: data}
	}
	return vclock.Value{Data: data, Flags: it.Flags, Expiry: it.Expiry}
}

// withExpiry returns it's value with op's new expiry; an expiry at or before the
// op's time makes it a tombstone (Redis deletes a key whose new expiry has passed).
func withExpiry(it Item, op Op) vclock.Value {
	v := rewrite(it, true, it.Value)
	switch {
	case op.Persist:
		v.Expiry = 0
	case op.Expiry <= op.Accepted:
		return vclock.Value{Tombstone: true}
	default:
		v.Expiry = op.Expiry
	}
	return v
}

// expireCondHolds implements EXPIRE's NX/XX/GT/LT; a key without expiry counts as
// an infinite TTL for GT and LT.
func expireCondHolds(c Cond, cur, next int64) bool {
	switch c {
	case CondNX:
		return cur == 0
	case CondXX:
		return cur != 0
	case CondGT:
		return cur != 0 && next > cur
	case CondLT:
		return cur == 0 || next < cur
	}
	return true
}

// parseCounter parses a memcached counter: decimal digits, as memcached's strtoull
// check (a value with trailing spaces, left by an earlier in-place decr, is accepted).
func parseCounter(b []byte) (uint64, bool) {
	for len(b) > 0 && b[len(b)-1] == ' ' {
		b = b[:len(b)-1]
	}
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(string(b), 10, 64)
	return n, err == nil
}

// FormatFloat formats f as Redis's INCRBYFLOAT reply: plain decimal notation, no
// exponent, shortest representation that round-trips, and "0" for negative zero
// (Redis's ld2string turns "-0" into "0").
func FormatFloat(f float64) []byte {
	if f == 0 {
		f = 0 // -0 == 0: drop the sign
	}
	return strconv.AppendFloat(nil, f, 'f', -1, 64)
}

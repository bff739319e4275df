package proxy

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dynakv/dynakv/coordinator"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/vclock"
)

// Sentinel errors, mapped to wire text by the front ends.
var (
	ErrNotInteger   = errors.New("proxy: value is not an integer or out of range")
	ErrOverflow     = errors.New("proxy: increment or decrement would overflow")
	ErrNotFloat     = errors.New("proxy: value is not a valid float")
	ErrNaN          = errors.New("proxy: increment would produce NaN or Infinity")
	ErrNonNumeric   = errors.New("proxy: cannot increment or decrement non-numeric value")
	ErrValueTooBig  = errors.New("proxy: value exceeds the maximum value size")
	ErrBadContext   = errors.New("proxy: invalid causal context")
	ErrBadOffset    = errors.New("proxy: offset is out of range")
	ErrUnknownOp    = errors.New("proxy: unknown operation")
	ErrInvalidFlush = errors.New("proxy: invalid flush time")
	// ErrOOM: the node that executes the op is over its memory limit and the op
	// may grow memory (see Config.Memory).
	ErrOOM = errors.New("proxy: command not allowed when used memory > maxmemory")
)

// Memory is the node's memory limit as the proxy sees it (see Config.Memory).
type Memory interface {
	// Admit returns nil when an op that may grow memory may run now, or an
	// error wrapping ErrOOM when the node is over its limit and cannot free
	// memory in time. It must be safe for concurrent use.
	Admit(ctx context.Context) error
}

// NoLimit admits every op: what a nil Config.Memory means.
type NoLimit struct{}

// Admit implements Memory.
func (NoLimit) Admit(context.Context) error { return nil }

var _ Memory = NoLimit{}

// Coordinator is what the proxy needs from coordinator/.
type Coordinator interface {
	Get(ctx context.Context, key []byte, opt coordinator.ReadOptions) (record.Record, error)
	Put(ctx context.Context, key []byte, clk vclock.Clock, v vclock.Value, opt coordinator.WriteOptions) (coordinator.WriteResult, error)
	Modify(ctx context.Context, key []byte, fn coordinator.ModifyFunc, opt coordinator.WriteOptions) (coordinator.WriteResult, error)
	Count(ctx context.Context) (int64, error)
	ScanPage(ctx context.Context, cursor uint64, count int, fn func(key []byte, rec record.Record) bool) (uint64, error)
	FlushAll(ctx context.Context) error
	Sync(ctx context.Context) error
}

var _ Coordinator = (*coordinator.Coordinator)(nil)

// Config configures a Proxy.
type Config struct {
	// MaxValueBytes bounds a stored value (SET, APPEND, SETRANGE, INCRBYFLOAT...).
	// Default 1 MiB, memcached's default item size.
	MaxValueBytes int
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Rand supplies randomness (RANDOMKEY); default a generator seeded at New. The
	// proxy owns it and draws from it under its own lock.
	Rand *rand.Rand
	// OnRead, when set, is told the number of live siblings each read found (for the
	// siblings-per-read metric). Reads forwarded to another node are counted there.
	OnRead func(siblings int)
	// Router decides which node coordinates each single-key op (see Do). Default
	// nil: every op runs on this node, as a single node or NoRouter does.
	Router Router
	// Memory, when set, is asked before every op that may grow memory (grows)
	// runs on this node: the node's maxmemory, checked where the op executes, so
	// a forwarded op is checked by the node that runs it. Replica writes, hints
	// and repair never pass through the proxy and are always accepted. Default
	// nil: no limit.
	Memory Memory
}

// EnsureDefaults returns a copy of c with defaults filled in.
func (c Config) EnsureDefaults() Config {
	if c.MaxValueBytes == 0 {
		c.MaxValueBytes = 1 << 20
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Memory == nil {
		c.Memory = NoLimit{}
	}
	if c.Rand == nil {
		c.Rand = rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x9e3779b97f4a7c15))
	}
	return c
}

// Proxy executes familiar commands against a coordinator.
type Proxy struct {
	cfg          Config
	co           Coordinator
	pendingFlush atomic.Int64 // unix ms of a delayed flush_all, 0 if none
	flushMu      sync.Mutex   // held while a due delayed flush runs
	randMu       sync.Mutex   // guards cfg.Rand, which is not safe for concurrent use
	hits, misses atomic.Int64
}

// New returns a Proxy over co.
func New(cfg Config, co Coordinator) *Proxy {
	return &Proxy{cfg: cfg.EnsureDefaults(), co: co}
}

// MaxValueBytes returns the configured value size limit.
func (p *Proxy) MaxValueBytes() int { return p.cfg.MaxValueBytes }

// Stats is a snapshot of the proxy's counters.
type Stats struct {
	Hits, Misses int64
}

// Stats returns a snapshot of the proxy's counters.
func (p *Proxy) Stats() Stats { return Stats{Hits: p.hits.Load(), Misses: p.misses.Load()} }

// Item is what a plain read sees of a key: the winning value (see resolve), when it
// is live.
type Item struct {
	Value []byte
	Flags uint32
	// Expiry is the absolute expiry, unix ms; 0 means none.
	Expiry int64
	// CAS is the memcached cas unique: the hash of the record's context.
	CAS uint64
	// Siblings is the number of live siblings the record holds (1 without conflicts).
	Siblings int
}

// TTL returns the remaining time to live in milliseconds at now, or -1 without
// expiry, as Redis's PTTL (the caller reports -2 for a missing key).
func (it Item) TTL(now time.Time) int64 {
	if it.Expiry == 0 {
		return -1
	}
	return max(it.Expiry-now.UnixMilli(), 0)
}

func (p *Proxy) now() int64 { return p.cfg.Now().UnixMilli() }

// liveSiblings returns rec's live siblings.
func liveSiblings(rec record.Record, now int64) []vclock.Sibling {
	sibs := rec.Str.Siblings()
	out := sibs[:0]
	for _, s := range sibs {
		if s.Live(now) {
			out = append(out, s)
		}
	}
	return out
}

// resolve turns a record into the Item plain commands see: the one rule every
// command that reads a plain value or decides existence follows (last writer wins).
// The winner is the greatest (timestamp, dot) among every sibling, tombstones and
// expired values included, so a delete or an expired overwrite hides every older
// value it is concurrent with; the key is absent when the winner is a tombstone or
// has expired. Item.Siblings counts the live siblings. It reads the string layer
// only: typed layers resolve with issue 20's record.Resolve (S3).
func resolve(rec record.Record, now int64) (Item, bool) {
	w, ok := vclock.Winner(rec.Str.Siblings())
	if !ok || !w.Live(now) {
		return Item{}, false
	}
	return Item{Value: w.Data, Flags: w.Flags, Expiry: w.Expiry, CAS: rec.Str.ContextHash(), Siblings: len(liveSiblings(rec, now))}, true
}

// checkFlush runs a delayed flush_all once its time has come. Checking on every
// operation keeps the semantics exact (nothing written before the flush time is seen
// after it) without a timer goroutine.
//
// The flush stays pending until it has run, and commands that find it due wait for
// the one running it: none of them reads the keyspace about to be dropped, or writes
// into it and then loses an acknowledged write to the flush.
func (p *Proxy) checkFlush(ctx context.Context) error {
	if at := p.pendingFlush.Load(); at == 0 || p.now() < at {
		return nil
	}
	p.flushMu.Lock()
	defer p.flushMu.Unlock()
	at := p.pendingFlush.Load() // it may have run, or been replaced, meanwhile
	if at == 0 || p.now() < at {
		return nil
	}
	if err := p.co.FlushAll(ctx); err != nil {
		return err
	}
	p.pendingFlush.CompareAndSwap(at, 0)
	return nil
}

// Kind names an operation.
type Kind uint8

// Operations.
const (
	OpGet Kind = iota + 1
	OpSet
	OpDelete
	OpGetDel
	OpGetEx
	OpIncr
	OpIncrFloat
	OpIncrUnsigned
	OpAppend
	OpSetRange
	OpExpire
	OpDGet
	OpDPut
	OpDDel
	OpSetBit
)

// Cond is a write condition.
type Cond uint8

// Write conditions: NX/add, XX/replace, EXPIRE's GT/LT, and memcached's cas.
const (
	CondNone Cond = iota
	CondNX
	CondXX
	CondGT
	CondLT
	// CondCAS (OpSet, OpDelete, OpAppend, OpIncrUnsigned): the write happens only
	// if the key exists (NotFound otherwise; NotStored for OpAppend) and its
	// record's context hashes to Op.CAS (Exists otherwise). A CAS of 0 matches no
	// item: memcached's "cas k 0" answers EXISTS or NOT_FOUND.
	CondCAS
)

// Op is one command on one key. Only the fields its Kind documents are used.
type Op struct {
	Kind Kind
	Key  []byte
	// Value: OpSet, OpAppend, OpSetRange, OpDPut.
	Value []byte
	// Flags: memcached client flags for OpSet.
	Flags uint32
	// Expiry: absolute unix ms for OpSet, OpExpire, OpGetEx, OpDPut (0: none). For
	// OpExpire and OpGetEx a time at or before now deletes the key, as Redis does.
	Expiry int64
	// KeepTTL (OpSet): keep the current expiry (Redis KEEPTTL); memcached never sets it.
	KeepTTL bool
	// Persist (OpExpire, OpGetEx): remove the expiry instead of setting one.
	Persist bool
	// SetExpiry (OpGetEx): change the expiry to Expiry (or Persist); otherwise GETEX
	// only reads. (OpIncrUnsigned): after an incr or decr that stored without
	// creating the key, a second write sets the expiry to Expiry (or Persist), as
	// memcached's ma with T; Result.Item is still the item the incr wrote, and
	// Result.CAS the cas unique after both writes.
	SetExpiry bool
	// Cond: OpSet (NX, XX, CAS), OpExpire (NX, XX, GT, LT), OpAppend (XX: key must
	// exist; CAS), OpDelete and OpIncrUnsigned (CAS).
	Cond Cond
	// CAS: the cas unique CondCAS compares with.
	CAS uint64
	// ReturnOld (OpSet): report the previous item (SET ... GET, GETSET).
	ReturnOld bool
	// Delta: OpIncr (signed, Redis) and OpIncrUnsigned (the magnitude; see Decr);
	// OpSetBit's new bit, 0 or 1.
	Delta int64
	// UDelta and Decr: OpIncrUnsigned, memcached's unsigned 64-bit incr/decr.
	UDelta uint64
	Decr   bool
	// Float: OpIncrFloat's increment.
	Float float64
	// Offset: OpSetRange (in bytes), OpSetBit (in bits, the most significant bit of
	// the first byte first, as Redis's SETBIT).
	Offset int64
	// Prepend (OpAppend): add Value before the current value.
	Prepend bool
	// Vivify (OpGet, OpGetEx, OpAppend, OpIncrUnsigned): memcached's autovivify, the
	// meta commands' N flag. When the op misses (a read finds no key, OpAppend is
	// NotStored, OpIncrUnsigned NotFound), the key is created if it is still
	// absent (a SET NX) with Value (OpIncrUnsigned: Initial as a decimal), Flags and
	// VivifyExpiry, and the Result says Created. When another client created it
	// first, a read reads the key again (without touching it) and a write runs once
	// more, on what the other client stored.
	Vivify bool
	// VivifyExpiry: the expiry of a key Vivify creates, absolute unix ms (0: none).
	VivifyExpiry int64
	// Initial (OpIncrUnsigned with Vivify): the counter a created key holds (ma J).
	Initial uint64
	// Context: OpDPut, OpDDel, the client's opaque causal context.
	Context string
	// R (OpGet, OpDGet): the read quorum for this request; 0 is the coordinator's
	// default.
	R int
	// W (every write): the write quorum for this request; 0 is the coordinator's
	// default.
	W int
	// Local (OpDGet): read only this node's replica. A Local op is never forwarded.
	Local bool
	// Accepted is when the front node accepted the command, unix ms by its clock:
	// the op's time. Do sets it when it is zero, once, as the op enters the node, and
	// a forwarded op carries it, so the node that executes the op uses the front
	// node's time, not its own, wherever the op needs "now": the timestamp of the
	// value it writes (what plain reads order siblings by), expiry decisions
	// (EXPIRE at a past time, whether the current value has expired). A run that
	// comes late therefore cannot order after writes the client saw complete after
	// it. Front ends leave it zero.
	Accepted int64
}

// Writes reports whether the op may write: everything but OpGet and OpDGet, and an
// OpGet with Vivify.
func (op Op) Writes() bool { return op.Kind != OpGet && op.Kind != OpDGet || op.Vivify }

// Status tells how a conditional write ended.
type Status uint8

// Statuses.
const (
	Stored    Status = iota + 1 // the write happened
	NotStored                   // a condition (NX, XX, GT, LT) failed
	Exists                      // CAS mismatch
	NotFound                    // the key does not exist (cas, replace-like writes)
)

// Result is the outcome of an Op.
type Result struct {
	Status Status
	// Created: Op.Vivify created the key (Status is then Stored, Item the created
	// item, Int its length for OpAppend, Uint its counter for OpIncrUnsigned).
	Created bool
	// Found and Item: the key's item as read (OpGet, OpGetDel, OpGetEx), the previous
	// item (OpSet with ReturnOld), or the item after the write (OpIncr*, OpAppend,
	// OpSetRange).
	Found bool
	Item  Item
	// Int: OpIncr's new value, OpAppend's and OpSetRange's new length, OpSetBit's
	// previous bit.
	Int int64
	// Uint: OpIncrUnsigned's new value.
	Uint uint64
	// Float: OpIncrFloat's new value, formatted as Redis does.
	Float []byte
	// CAS: the record's cas unique after a write.
	CAS uint64
	// Context and Values: OpDGet (context and live siblings), OpDPut and OpDDel (new
	// context).
	Context string
	Values  [][]byte
}

// accept sets op's accept time to now unless it has one.
func (p *Proxy) accept(op *Op) {
	if op.Accepted == 0 {
		op.Accepted = p.now()
	}
}

// do executes op on this node, its writes with durability d; op.Accepted is set. It
// reports whether the op's outcome is durable (see Session).
func (p *Proxy) do(ctx context.Context, op Op, d coordinator.Durability) (Result, bool, error) {
	if err := p.checkFlush(ctx); err != nil {
		return Result{}, false, err
	}
	if grows(op) {
		if err := p.cfg.Memory.Admit(ctx); err != nil {
			return Result{}, false, err
		}
	}
	if op.Vivify || op.Kind == OpIncrUnsigned && op.SetExpiry {
		return p.steps(ctx, op, d)
	}
	return p.run(ctx, op, d)
}

// grows reports whether op may grow memory, Redis's denyoom: every write that
// stores a value (OpSet, OpIncr*, OpAppend, OpSetRange, OpSetBit, OpDPut) and
// every op that may create a key (Vivify). Deletes (OpDelete, OpDDel, OpGetDel),
// OpGetEx and OpExpire only shrink or keep a record, as Redis flags DEL, GETDEL,
// GETEX and EXPIRE write without denyoom; reads never grow.
func grows(op Op) bool {
	switch op.Kind {
	case OpSet, OpIncr, OpIncrFloat, OpIncrUnsigned, OpAppend, OpSetRange, OpSetBit, OpDPut:
		return true
	}
	return op.Vivify
}

// run executes one op of a single step on this node, as do. A read is durable: it
// needs no sync (a plain read never waits for one).
func (p *Proxy) run(ctx context.Context, op Op, d coordinator.Durability) (Result, bool, error) {
	var res Result
	var err error
	switch op.Kind {
	case OpGet:
		res, err = p.get(ctx, op)
	case OpDGet:
		res, err = p.dget(ctx, op)
	case OpDPut, OpDDel:
		return p.dput(ctx, op, d)
	default:
		if applierOf(op.Kind) == nil {
			return Result{}, false, fmt.Errorf("%w: %d", ErrUnknownOp, op.Kind)
		}
		return p.modify(ctx, op, d)
	}
	return res, err == nil, err
}

func (p *Proxy) get(ctx context.Context, op Op) (Result, error) {
	rec, err := p.co.Get(ctx, op.Key, coordinator.ReadOptions{R: op.R})
	if err != nil {
		return Result{}, err
	}
	return p.read(op, rec), nil
}

// read returns a plain GET's result given the record it read, and counts it.
func (p *Proxy) read(op Op, rec record.Record) Result {
	it, ok := resolve(rec, op.Accepted)
	p.countRead(ok, it.Siblings)
	return Result{Found: ok, Item: it, CAS: it.CAS}
}

func (p *Proxy) countRead(hit bool, siblings int) {
	if hit {
		p.hits.Add(1)
	} else {
		p.misses.Add(1)
	}
	if p.cfg.OnRead != nil {
		p.cfg.OnRead(siblings)
	}
}

func (p *Proxy) dget(ctx context.Context, op Op) (Result, error) {
	rec, err := p.co.Get(ctx, op.Key, coordinator.ReadOptions{R: op.R, Local: op.Local})
	if err != nil {
		return Result{}, err
	}
	sibs := liveSiblings(rec, op.Accepted)
	vals := make([][]byte, len(sibs))
	for i, s := range sibs {
		vals[i] = nonNil(s.Data)
	}
	p.countRead(len(sibs) > 0, len(sibs))
	return Result{Found: len(sibs) > 0, Context: rec.Str.Join().String(), Values: vals}, nil
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func (p *Proxy) dput(ctx context.Context, op Op, d coordinator.Durability) (Result, bool, error) {
	clk, err := vclock.ParseContext(op.Context)
	if err != nil {
		return Result{}, false, fmt.Errorf("%w: %v", ErrBadContext, err)
	}
	v := vclock.Value{Timestamp: op.Accepted}
	if op.Kind == OpDDel {
		v.Tombstone = true
	} else {
		if len(op.Value) > p.cfg.MaxValueBytes {
			return Result{}, false, ErrValueTooBig
		}
		v.Data, v.Expiry = op.Value, op.Expiry
	}
	w, err := p.co.Put(ctx, op.Key, clk, v, coordinator.WriteOptions{W: op.W, Durability: d})
	if err != nil {
		return Result{}, false, err
	}
	return Result{Status: Stored, Context: w.Record.Str.Join().String(), CAS: w.Record.Str.ContextHash()}, w.Durable, nil
}

// modify runs a plain read-modify-write command. Every one but a plain SET asks the
// coordinator to read the key from its replicas first (ReadFirst), so that what it
// decides on includes writes coordinated elsewhere. A decision not to write is not
// durable under Deferred: what it read may be another connection's write not
// synced yet, and the reply must not leave before that write is durable (the
// coordinator reports it so, and the session's Flush covers it).
func (p *Proxy) modify(ctx context.Context, op Op, d coordinator.Durability) (Result, bool, error) {
	var res Result
	w, err := p.co.Modify(ctx, op.Key, p.modifyFunc(op, &res), p.writeOptions(op, d))
	if err != nil { // Modify reports a decision not to write (errNoWrite) as success
		return Result{}, false, err
	}
	return modified(op, res, w), w.Durable, nil
}

// modifyFunc is the coordinator.ModifyFunc of a plain read-modify-write: op's
// applier run on the item the record resolves to, at op's time; it leaves the
// outcome in *res.
func (p *Proxy) modifyFunc(op Op, res *Result) coordinator.ModifyFunc {
	return func(cur record.Record) (vclock.Clock, vclock.Value, error) {
		now := op.Accepted
		it, found := resolve(cur, now)
		*res = Result{}
		v, err := p.apply(op, it, found, res)
		if err != nil {
			return nil, vclock.Value{}, err
		}
		v.Timestamp = now
		return cur.Str.Join(), v, nil
	}
}

// writeOptions are a plain read-modify-write's options (see modify).
func (p *Proxy) writeOptions(op Op, d coordinator.Durability) coordinator.WriteOptions {
	return coordinator.WriteOptions{W: op.W, Durability: d, ReadFirst: !plainSet(op)}
}

// modified completes the result of a plain read-modify-write that succeeded
// with w: a write's cas unique.
func modified(op Op, res Result, w coordinator.WriteResult) Result {
	if res.Status == Stored {
		res.CAS = w.Record.Str.ContextHash()
		if writesItem(op.Kind) {
			res.Item.CAS = res.CAS
		}
	}
	return res
}

// plainSet reports whether op is a SET that depends on nothing it would read: no
// condition (NX, XX, CAS), no previous item to return, no TTL to keep. Like Dynamo's put,
// it overwrites what the coordinator has seen without reading the other replicas.
func plainSet(op Op) bool {
	return op.Kind == OpSet && op.Cond == CondNone && !op.ReturnOld && !op.KeepTTL
}

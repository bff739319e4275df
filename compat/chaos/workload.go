package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/redis/go-redis/v9"

	"github.com/dynakv/dynakv/compat/chaos/history"
)

// keyspace: each kind of writer has its own keys, so the checker's rules stay sharp.
// set: SET (RESP); incr: INCR; dput: DGET/DPUT (and DDEL on the even ones, so the
// odd ones keep rule 3 strict); del: SET, DEL and memcached set, delete, cas; exp:
// SET and memcached set, with and without a short TTL (an expiring overwrite of
// an older value); mcincr: memcached incr, from a SET of 0 before the load.
type keyspace struct {
	set, incr, dput, del, exp, mcincr []string
}

func newKeyspace(sets, incrs, dputs, dels, exps, mcincrs int) keyspace {
	gen := func(prefix string, n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("%s:%d", prefix, i))
		}
		return out
	}
	return keyspace{set: gen("set", sets), incr: gen("incr", incrs), dput: gen("dput", dputs),
		del: gen("del", dels), exp: gen("exp", exps), mcincr: gen("mcincr", mcincrs)}
}

// plain are the keys plain reads check after convergence.
func (k keyspace) plain() []string {
	return slices.Concat(k.set, k.incr, k.del, k.exp, k.mcincr)
}

func (k keyspace) all() []string { return slices.Concat(k.plain(), k.dput) }

// recorder collects the history; times are offsets from start.
type recorder struct {
	start time.Time
	mu    sync.Mutex
	ops   []history.Op
}

func (r *recorder) now() time.Duration { return time.Since(r.start) }

func (r *recorder) add(o history.Op) {
	r.mu.Lock()
	defer r.mu.Unlock()
	o.ID = len(r.ops) + 1
	r.ops = append(r.ops, o)
}

// opTimeout bounds every client operation.
const opTimeout = 3 * time.Second

// newClient is a go-redis client with no retries (a retried INCR would count
// twice, a retried write would blur the history) and short timeouts.
func newClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr: addr, Protocol: 2, MaxRetries: -1, PoolSize: 2,
		DialTimeout: time.Second, ReadTimeout: opTimeout, WriteTimeout: time.Second,
		DisableIdentity: true,
	})
}

// session is one client: a sequence of operations through its preferred node,
// moving to the next member after an error, as a client with a node list would.
// It speaks RESP and memcached, through a client of each per host.
type session struct {
	id      int
	rng     *rand.Rand
	targets func() []*node // the members clients may use now
	redis   map[int]*redis.Client
	mc      map[int]*memcache.Client
	cur     int
	keys    keyspace
	rec     *recorder
	seq     int
	// last is the context the session last got for each DPUT key (from DGET or
	// its own DPUT), which a chained DPUT writes with.
	last map[string]string
	read map[string]bool // DPUT keys this session has read
}

func newSession(id int, seed int64, hosts []*host, targets func() []*node, keys keyspace, rec *recorder) *session {
	s := &session{id: id, rng: rand.New(rand.NewSource(seed)), targets: targets, keys: keys, rec: rec, cur: id,
		redis: map[int]*redis.Client{}, mc: map[int]*memcache.Client{}, last: map[string]string{}, read: map[string]bool{}}
	for _, h := range hosts {
		s.redis[h.idx] = newClient(fmt.Sprintf("%s:%d", h.ip, respPort))
		s.mc[h.idx] = newMemcache(fmt.Sprintf("%s:%d", h.ip, mcPort))
	}
	return s
}

func (s *session) close() {
	for _, cl := range s.redis {
		cl.Close()
	}
	for _, cl := range s.mc {
		cl.Close()
	}
}

// newMemcache is a gomemcache client of one node, with the RESP clients' timeout.
func newMemcache(addr string) *memcache.Client {
	mc := memcache.New(addr)
	mc.Timeout, mc.MaxIdleConns = opTimeout, 2
	return mc
}

// target is the member this session sends its next operation to.
func (s *session) target() *node {
	ts := s.targets()
	return ts[s.cur%len(ts)]
}

// outcome classifies a RESP client error.
func outcome(err error) (history.Outcome, string) {
	if err == nil || errors.Is(err, redis.Nil) {
		return history.OK, ""
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		return history.Fail, err.Error()
	}
	return history.Unknown, err.Error()
}

// mcOutcome classifies a gomemcache error the caller did not take as an answer:
// an error line from the server is a failure, anything else (timeouts, resets,
// refused connections) leaves the outcome unknown.
func mcOutcome(err error) (history.Outcome, string) {
	if err == nil {
		return history.OK, ""
	}
	msg := err.Error()
	for _, answer := range []string{"SERVER_ERROR", "CLIENT_ERROR", "unexpected response line", "unexpected line in get response", "client error"} {
		if strings.Contains(msg, answer) {
			return history.Fail, msg
		}
	}
	return history.Unknown, msg
}

// do runs one RESP command and records it; fill copies the reply into the op.
func (s *session) do(o history.Op, args []any, fill func(reply any, o *history.Op) error) (history.Op, bool) {
	n := s.target()
	o.Session, o.Node = s.id, n.name
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	o.Invoke = s.rec.now()
	reply, err := s.redis[n.h.idx].Do(ctx, args...).Result()
	o.Complete = s.rec.now()
	if err == nil && fill != nil {
		if ferr := fill(reply, &o); ferr != nil {
			err = ferr
		}
	}
	o.Outcome, o.Err = outcome(err)
	if err != nil && !errors.Is(err, redis.Nil) {
		s.cur++
	}
	s.rec.add(o)
	return o, o.Outcome == history.OK
}

// mcdo runs one memcached request and records it. run fills the op and returns
// nil for every answer it understood (a miss, EXISTS, NOT_STORED included).
func (s *session) mcdo(o history.Op, run func(mc *memcache.Client, o *history.Op) error) (history.Op, bool) {
	n := s.target()
	o.Session, o.Node = s.id, n.name
	o.Invoke = s.rec.now()
	err := run(s.mc[n.h.idx], &o)
	o.Complete = s.rec.now()
	o.Outcome, o.Err = mcOutcome(err)
	if err != nil {
		s.cur++
	}
	s.rec.add(o)
	return o, o.Outcome == history.OK
}

func (s *session) value(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s%d-%d", prefix, s.id, s.seq)
}

func pick(rng *rand.Rand, keys []string) string { return keys[rng.Intn(len(keys))] }

// step runs one operation (or a read followed by a write) chosen at random.
func (s *session) step() {
	switch r := s.rng.Intn(100); {
	case r < 12:
		ex := 0
		if s.rng.Intn(4) == 0 {
			ex = 3600
		}
		s.set(pick(s.rng, s.keys.set), "s", ex, 0)
	case r < 16:
		s.get(pick(s.rng, s.keys.set))
	case r < 26:
		key := pick(s.rng, s.keys.incr)
		s.do(history.Op{Kind: history.Incr, Key: key}, []any{"INCR", key}, func(reply any, o *history.Op) error {
			n, ok := reply.(int64)
			if !ok {
				return fmt.Errorf("INCR reply %T", reply)
			}
			o.Value = strconv.FormatInt(n, 10)
			return nil
		})
	case r < 28:
		s.get(pick(s.rng, s.keys.incr))
	case r < 40:
		s.delStep(pick(s.rng, s.keys.del))
	case r < 50:
		s.expStep(pick(s.rng, s.keys.exp))
	case r < 56:
		key := pick(s.rng, s.keys.mcincr)
		if s.rng.Intn(10) == 0 {
			s.mcGet(key)
			return
		}
		s.mcdo(history.Op{Kind: history.MIncr, Key: key}, func(mc *memcache.Client, o *history.Op) error {
			n, err := mc.Increment(key, 1)
			switch {
			case errors.Is(err, memcache.ErrCacheMiss):
				o.Noop = true
				return nil
			case err == nil:
				o.Value = strconv.FormatUint(n, 10)
			}
			return err
		})
	default:
		s.contextStep(pick(s.rng, s.keys.dput))
	}
}

// set runs SET key v [EX ex | PX px] with a fresh value.
func (s *session) set(key, prefix string, ex, px int) {
	o := history.Op{Kind: history.Set, Key: key, Value: s.value(prefix), EX: ex, PX: px}
	args := []any{"SET", key, o.Value}
	if ex > 0 {
		args = append(args, "EX", ex)
	}
	if px > 0 {
		args = append(args, "PX", px)
	}
	s.do(o, args, nil)
}

// mcSet runs memcached set with a fresh value and exptime ex.
func (s *session) mcSet(key, prefix string, ex int) {
	o := history.Op{Kind: history.MSet, Key: key, Value: s.value(prefix), EX: ex}
	s.mcdo(o, func(mc *memcache.Client, o *history.Op) error {
		return mc.Set(&memcache.Item{Key: key, Value: []byte(o.Value), Expiration: int32(ex)})
	})
}

func (s *session) get(key string) {
	s.do(history.Op{Kind: history.Get, Key: key}, []any{"GET", key}, fillGet)
}

// mcGet runs memcached get (gomemcache sends gets) and returns the item.
func (s *session) mcGet(key string) *memcache.Item {
	var it *memcache.Item
	s.mcdo(history.Op{Kind: history.MGet, Key: key}, func(mc *memcache.Client, o *history.Op) error {
		var err error
		it, err = mc.Get(key)
		if errors.Is(err, memcache.ErrCacheMiss) {
			return nil
		}
		if err == nil {
			o.Value, o.Found = string(it.Value), true
		}
		return err
	})
	return it
}

// delStep writes, deletes or reads a del key, through RESP or memcached.
func (s *session) delStep(key string) {
	switch r := s.rng.Intn(100); {
	case r < 20:
		s.set(key, "r", 0, 0)
	case r < 40:
		s.mcSet(key, "m", 0)
	case r < 55:
		s.do(history.Op{Kind: history.Del, Key: key}, []any{"DEL", key}, func(reply any, o *history.Op) error {
			n, ok := reply.(int64)
			if !ok {
				return fmt.Errorf("DEL reply %T", reply)
			}
			o.Noop = n == 0
			return nil
		})
	case r < 70:
		s.mcdo(history.Op{Kind: history.MDel, Key: key}, func(mc *memcache.Client, o *history.Op) error {
			err := mc.Delete(key)
			if errors.Is(err, memcache.ErrCacheMiss) {
				o.Noop = true
				return nil
			}
			return err
		})
	case r < 90:
		it := s.mcGet(key)
		if it == nil {
			return
		}
		s.mcdo(history.Op{Kind: history.MCas, Key: key, Value: s.value("c")}, func(mc *memcache.Client, o *history.Op) error {
			it.Value = []byte(o.Value)
			err := mc.CompareAndSwap(it)
			if errors.Is(err, memcache.ErrCASConflict) || errors.Is(err, memcache.ErrCacheMiss) || errors.Is(err, memcache.ErrNotStored) {
				o.Noop = true
				return nil
			}
			return err
		})
	case r < 95:
		s.get(key)
	default:
		s.mcGet(key)
	}
}

// expStep writes an exp key, half the time with a TTL of about two seconds (SET
// EX 2, SET PX 1500-2500, memcached exptime 2), over what an earlier write left.
func (s *session) expStep(key string) {
	switch r := s.rng.Intn(100); {
	case r < 25:
		s.set(key, "o", 0, 0)
	case r < 45:
		s.mcSet(key, "p", 0)
	case r < 60:
		s.set(key, "e", 2, 0)
	case r < 72:
		s.set(key, "x", 0, 1500+s.rng.Intn(1000))
	case r < 90:
		s.mcSet(key, "t", 2)
	case r < 95:
		s.get(key)
	default:
		s.mcGet(key)
	}
}

func fillGet(reply any, o *history.Op) error {
	if reply == nil {
		return nil
	}
	str, ok := reply.(string)
	if !ok {
		return fmt.Errorf("GET reply %T", reply)
	}
	o.Value, o.Found = str, true
	return nil
}

// dget runs DGET key and remembers the context.
func (s *session) dget(key string) (history.Op, bool) {
	o, ok := s.do(history.Op{Kind: history.DGet, Key: key}, []any{"DGET", key}, fillDGet)
	if ok {
		s.last[key], s.read[key] = o.Result, true
	}
	return o, ok
}

func fillDGet(reply any, o *history.Op) error {
	arr, ok := reply.([]any)
	if !ok || len(arr) != 2 {
		return fmt.Errorf("DGET reply %v", reply)
	}
	c, ok := arr[0].(string)
	vals, ok2 := arr[1].([]any)
	if !ok || !ok2 {
		return fmt.Errorf("DGET reply %v", reply)
	}
	o.Result = c
	for _, v := range vals {
		str, ok := v.(string)
		if !ok {
			return fmt.Errorf("DGET sibling %T", v)
		}
		o.Values = append(o.Values, str)
	}
	return nil
}

func fillContext(reply any, o *history.Op) error {
	c, ok := reply.(string)
	if !ok {
		return fmt.Errorf("context reply %T", reply)
	}
	o.Result = c
	return nil
}

// contextStep is a read-modify-write session on a DPUT key: usually DGET then DPUT
// with its context; sometimes a DDEL (even keys only), a DPUT chained on the
// session's last context, or a blind DPUT with no context (a sibling on purpose).
func (s *session) contextStep(key string) {
	put := func(c string) {
		v := s.value("d")
		if o, ok := s.do(history.Op{Kind: history.DPut, Key: key, Value: v, Context: c}, []any{"DPUT", key, c, v}, fillContext); ok {
			s.last[key] = o.Result
		}
	}
	deletable := slices.Index(s.keys.dput, key)%2 == 0
	switch r := s.rng.Intn(100); {
	case r < 10:
		put("")
	case r < 25:
		if c, ok := s.last[key]; ok {
			put(c)
			return
		}
		put("")
	case r < 35 && deletable:
		if o, ok := s.dget(key); ok {
			s.do(history.Op{Kind: history.DDel, Key: key, Context: o.Result}, []any{"DDEL", key, o.Result}, fillContext)
		}
	case r < 45:
		s.dget(key)
	default:
		if o, ok := s.dget(key); ok {
			put(o.Result)
		}
	}
}

// runSessions runs n sessions until stop is closed or each did maxOps steps,
// pacing each to about perSec steps a second.
func runSessions(sessions []*session, stop <-chan struct{}, maxOps int, perSec int) {
	var wg sync.WaitGroup
	for _, s := range sessions {
		wg.Go(func() {
			tick := time.NewTicker(time.Second / time.Duration(perSec))
			defer tick.Stop()
			for range maxOps {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				s.step()
			}
		})
	}
	wg.Wait()
}

// finalReads has every session DGET each DPUT key it read, after convergence:
// rule 5 requires these to descend everything the session saw.
func finalReads(sessions []*session) {
	var wg sync.WaitGroup
	for _, s := range sessions {
		wg.Go(func() {
			for _, key := range s.keys.dput {
				if s.read[key] {
					s.dget(key)
				}
			}
		})
	}
	wg.Wait()
}

// finalPlainReads reads every plain key through every member, with GET and with
// memcached get, after convergence: rules 7 to 9 judge what they return. Each
// member's reads are one session of their own (ids from 1000).
func finalPlainReads(members []*node, keys keyspace, rec *recorder) {
	var wg sync.WaitGroup
	for _, n := range members {
		wg.Go(func() {
			s := newSession(1000+n.h.idx, 0, []*host{n.h}, func() []*node { return []*node{n} }, keys, rec)
			defer s.close()
			for _, key := range keys.plain() {
				s.get(key)
				s.mcGet(key)
			}
		})
	}
	wg.Wait()
}

// initCounters sets every mcincr key to 0 through members[0] (memcached incr
// answers NOT_FOUND on a missing key), recorded as the history's first writes.
func initCounters(members []*node, keys keyspace, rec *recorder) error {
	s := newSession(0, 0, []*host{members[0].h}, func() []*node { return members[:1] }, keys, rec)
	defer s.close()
	for _, key := range keys.mcincr {
		if o, ok := s.do(history.Op{Kind: history.Set, Key: key, Value: "0"}, []any{"SET", key, "0"}, nil); !ok {
			return fmt.Errorf("SET %s 0: %s", key, o.Err)
		}
	}
	return nil
}

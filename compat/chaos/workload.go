package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dynakv/dynakv/compat/chaos/history"
)

// keyspace: each kind of writer has its own keys, so the checker's rules stay sharp.
type keyspace struct {
	set, incr, dput []string
}

func newKeyspace(sets, incrs, dputs int) keyspace {
	var k keyspace
	for i := range sets {
		k.set = append(k.set, fmt.Sprintf("set:%d", i))
	}
	for i := range incrs {
		k.incr = append(k.incr, fmt.Sprintf("incr:%d", i))
	}
	for i := range dputs {
		k.dput = append(k.dput, fmt.Sprintf("dput:%d", i))
	}
	return k
}

func (k keyspace) all() []string {
	return append(append(append([]string(nil), k.set...), k.incr...), k.dput...)
}

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
// moving to the next node after an error, as a client with a node list would.
type session struct {
	id      int
	rng     *rand.Rand
	clients []*redis.Client
	names   []string
	cur     int
	keys    keyspace
	rec     *recorder
	seq     int
	// last is the context the session last got for each DPUT key (from DGET or
	// its own DPUT), which a chained DPUT writes with.
	last map[string]string
	read map[string]bool // DPUT keys this session has read
}

// outcome classifies a client error.
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

// do runs one command and records it; fill copies the reply into the op.
func (s *session) do(o history.Op, args []any, fill func(reply any, o *history.Op) error) (history.Op, bool) {
	o.Session, o.Node = s.id, s.names[s.cur]
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	o.Invoke = s.rec.now()
	reply, err := s.clients[s.cur].Do(ctx, args...).Result()
	o.Complete = s.rec.now()
	if err == nil && fill != nil {
		if ferr := fill(reply, &o); ferr != nil {
			err = ferr
		}
	}
	o.Outcome, o.Err = outcome(err)
	if err != nil && !errors.Is(err, redis.Nil) {
		s.cur = (s.cur + 1) % len(s.clients)
	}
	s.rec.add(o)
	return o, o.Outcome == history.OK
}

func (s *session) value(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s%d-%d", prefix, s.id, s.seq)
}

func pick(rng *rand.Rand, keys []string) string { return keys[rng.Intn(len(keys))] }

// step runs one operation (or a DGET followed by a write) chosen at random.
func (s *session) step() {
	switch r := s.rng.Intn(100); {
	case r < 20:
		key, v := pick(s.rng, s.keys.set), s.value("s")
		o := history.Op{Kind: history.Set, Key: key, Value: v}
		args := []any{"SET", key, v}
		if s.rng.Intn(4) == 0 {
			o.EX = 3600
			args = append(args, "EX", o.EX)
		}
		s.do(o, args, nil)
	case r < 28:
		key := pick(s.rng, s.keys.set)
		s.do(history.Op{Kind: history.Get, Key: key}, []any{"GET", key}, fillGet)
	case r < 42:
		key := pick(s.rng, s.keys.incr)
		s.do(history.Op{Kind: history.Incr, Key: key}, []any{"INCR", key}, func(reply any, o *history.Op) error {
			n, ok := reply.(int64)
			if !ok {
				return fmt.Errorf("INCR reply %T", reply)
			}
			o.Value = strconv.FormatInt(n, 10)
			return nil
		})
	case r < 45:
		key := pick(s.rng, s.keys.incr)
		s.do(history.Op{Kind: history.Get, Key: key}, []any{"GET", key}, fillGet)
	default:
		s.contextStep(pick(s.rng, s.keys.dput))
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
// with its context; sometimes a DDEL, a DPUT chained on the session's last
// context, or a blind DPUT with no context (a sibling on purpose).
func (s *session) contextStep(key string) {
	put := func(c string) {
		v := s.value("d")
		if o, ok := s.do(history.Op{Kind: history.DPut, Key: key, Value: v, Context: c}, []any{"DPUT", key, c, v}, fillContext); ok {
			s.last[key] = o.Result
		}
	}
	switch r := s.rng.Intn(100); {
	case r < 10:
		put("")
	case r < 25:
		if c, ok := s.last[key]; ok {
			put(c)
			return
		}
		put("")
	case r < 35:
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

package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Config is one run: a workload against one target. Start from DefaultConfig; the
// functions that take a Config never mutate the caller's copy.
type Config struct {
	// Name labels the target in reports; default Target.
	Name string
	// Target is the server's host:port.
	Target string
	// Protocol is ProtoRESP (default) or ProtoMemcache.
	Protocol string
	Workload Workload
	// Conns is the number of connections, each its own goroutine; default 50.
	Conns int
	// Pipeline is how many requests a connection sends before reading their
	// replies; default 1 (no pipelining).
	Pipeline int
	// Requests ends the run after this many requests in all (0: no count bound).
	Requests int64
	// Duration ends the run after this long (0: no time bound but MaxDuration).
	Duration time.Duration
	// MaxDuration bounds a run that has only a request count; default 10 minutes.
	MaxDuration time.Duration
	// Seed seeds every connection's generator (connection i uses stream i); default 1.
	Seed uint64
	// DialTimeout bounds each connect; default 5s. IOTimeout bounds each batch's
	// write and the wait for its replies; default 10s.
	DialTimeout, IOTimeout time.Duration
	// Progress, when set, is told how the run advances. Default none.
	Progress Progress
}

// Progress is told how a run advances, from one goroutine, at most every 100 ms.
type Progress interface {
	// Begin starts a run called label.
	Begin(label string)
	// Update reports done requests so far and the part of the run behind, 0..1.
	Update(done int64, fraction float64)
	// End ends the run.
	End()
}

// DefaultConfig returns a RESP run of DefaultWorkload over 50 connections without
// pipelining, for 100,000 requests.
func DefaultConfig() Config {
	return Config{Protocol: ProtoRESP, Workload: DefaultWorkload(), Conns: 50, Pipeline: 1, Requests: 100_000, Seed: 1}
}

// EnsureDefaults returns a copy of c with unset fields set to their defaults.
func (c Config) EnsureDefaults() Config {
	if c.Name == "" {
		c.Name = c.Target
	}
	if c.Protocol == "" {
		c.Protocol = ProtoRESP
	}
	if c.Conns <= 0 {
		c.Conns = 50
	}
	if c.Pipeline <= 0 {
		c.Pipeline = 1
	}
	if c.MaxDuration <= 0 {
		c.MaxDuration = 10 * time.Minute
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.IOTimeout <= 0 {
		c.IOTimeout = 10 * time.Second
	}
	return c
}

// Validate reports what is wrong with c (after EnsureDefaults), if anything.
func (c Config) Validate() error {
	if c.Target == "" {
		return fmt.Errorf("%w: no target", ErrConfig)
	}
	if _, err := newCodec(c.Protocol); err != nil {
		return err
	}
	if c.Requests < 0 || c.Duration < 0 {
		return fmt.Errorf("%w: negative requests or duration", ErrConfig)
	}
	if c.Conns > 10_000 || c.Pipeline > 10_000 {
		return fmt.Errorf("%w: at most 10000 connections and pipeline depth 10000", ErrConfig)
	}
	return c.Workload.Validate()
}

// limit returns the run's time bound.
func (c Config) limit() time.Duration {
	if c.Duration > 0 {
		return c.Duration
	}
	return c.MaxDuration
}

// Histogram range: 1 µs to 100 s, 3 significant digits.
const (
	histMin = 1
	histMax = 100_000_000
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, 3) }

// worker is one connection's state, owned by its goroutine until the run ends.
type worker struct {
	conn  *Conn
	gen   *Generator
	hists [numOps]*hdrhistogram.Histogram
	errs  [numOps]int64
	// hits and misses count the GETs answered with a value and with nothing.
	hits, misses int64
	reqs         []Request
	keys         [][]byte
	// fills are the keys whose GETs missed in the last batch (PatternCache): the
	// next batch SETs them first. At most one per request of a batch.
	fills [][]byte
}

func newWorker(pipeline int) *worker {
	w := &worker{reqs: make([]Request, pipeline), keys: make([][]byte, pipeline), fills: make([][]byte, 0, pipeline)}
	for op := range w.hists {
		w.hists[op] = newHist()
	}
	return w
}

// budget hands out requests in batches; unlimited when total is 0.
type budget struct {
	total int64
	taken atomic.Int64
}

func (b *budget) claim(n int) int {
	if b.total == 0 {
		return n
	}
	end := b.taken.Add(int64(n))
	if end <= b.total {
		return n
	}
	if over := end - b.total; over < int64(n) {
		return n - int(over)
	}
	return 0
}

// Run runs cfg's workload against its target and returns what it measured. It ends
// when the request count is reached, the duration has passed or ctx is done; a
// connection error ends it with that error.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg = cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	value := makeValue(cfg.Workload.ValueSize, cfg.Seed)
	workers := make([]*worker, cfg.Conns)
	defer func() {
		for _, w := range workers {
			if w != nil {
				w.conn.Close()
			}
		}
	}()
	for i := range workers {
		c, err := Dial(cfg.Protocol, cfg.Target, cfg.DialTimeout)
		if err != nil {
			return nil, fmt.Errorf("connection %d of %d: %w", i+1, cfg.Conns, err)
		}
		w := newWorker(cfg.Pipeline)
		w.conn, w.gen = c, NewGenerator(cfg.Workload, cfg.Seed, uint64(i))
		workers[i] = w
	}

	ctx, cancel := context.WithTimeout(ctx, cfg.limit())
	defer cancel()
	b := &budget{total: cfg.Requests}
	var done atomic.Int64
	start := time.Now()
	errc := make(chan error, len(workers))
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.loop(ctx, cfg, b, value, &done); err != nil {
				errc <- err
				cancel()
			}
		}()
	}
	stopWatch := make(chan struct{})
	go func() {
		// Closing the connections unblocks workers waiting on a reply when ctx ends.
		select {
		case <-ctx.Done():
			for _, w := range workers {
				w.conn.SetDeadline(time.Now())
			}
		case <-stopWatch:
		}
	}()
	watchProgress(cfg, &done, start, &wg)
	close(stopWatch)
	elapsed := time.Since(start)
	close(errc)
	if err := <-errc; err != nil {
		return nil, fmt.Errorf("bench %s: %w", cfg.Name, err)
	}
	return collect(cfg, workers, elapsed), nil
}

// watchProgress reports progress until every worker has returned.
func watchProgress(cfg Config, done *atomic.Int64, start time.Time, wg *sync.WaitGroup) {
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	if cfg.Progress == nil {
		<-finished
		return
	}
	cfg.Progress.Begin(cfg.Name + " " + cfg.Protocol + " " + cfg.Workload.Ratio())
	defer cfg.Progress.End()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-finished:
			cfg.Progress.Update(done.Load(), 1)
			return
		case <-tick.C:
			n := done.Load()
			f := float64(time.Since(start)) / float64(cfg.limit())
			if cfg.Requests > 0 {
				f = max(f, float64(n)/float64(cfg.Requests))
			}
			cfg.Progress.Update(n, min(f, 1))
		}
	}
}

func (w *worker) loop(ctx context.Context, cfg Config, b *budget, value []byte, done *atomic.Int64) error {
	var t0 time.Time
	record := func(i int, reply Reply) {
		w.record(w.reqs[i], reply, cfg.Workload.cache(), time.Since(t0))
	}
	for ctx.Err() == nil {
		n := b.claim(cfg.Pipeline)
		if n == 0 {
			return nil
		}
		w.plan(cfg.Workload, n)
		t0 = time.Now()
		if err := w.conn.SetDeadline(t0.Add(cfg.IOTimeout)); err != nil {
			return err
		}
		if err := w.conn.Batch(w.reqs[:n], value, record); err != nil {
			if ctx.Err() != nil {
				return nil // the run ended while this batch was in flight
			}
			return err
		}
		done.Add(int64(n))
	}
	return nil
}

// plan fills the first n requests of the next batch: the SETs of the keys that
// missed in the last batch first (PatternCache), then new draws. Fills beyond n
// (only when the request budget runs out) are dropped.
func (w *worker) plan(wl Workload, n int) {
	i := 0
	for ; i < n && i < len(w.fills); i++ {
		w.keys[i] = append(w.keys[i][:0], w.fills[i]...)
		w.reqs[i] = Request{Op: OpSet, Key: w.keys[i]}
	}
	w.fills = w.fills[:0]
	for ; i < n; i++ {
		op, k := w.gen.Next()
		w.keys[i] = wl.AppendKey(w.keys[i][:0], k)
		w.reqs[i] = Request{Op: op, Key: w.keys[i]}
	}
}

// record counts the reply to q, which took took: its latency (unless an error),
// a GET's hit or miss, and with fill set a miss's key to SET in the next batch.
func (w *worker) record(q Request, reply Reply, fill bool, took time.Duration) {
	if reply == ReplyError {
		w.errs[q.Op]++
		return
	}
	_ = w.hists[q.Op].RecordValue(min(max(took.Microseconds(), histMin), histMax))
	if q.Op != OpGet {
		return
	}
	if reply == ReplyOK {
		w.hits++
		return
	}
	w.misses++
	if fill {
		k := len(w.fills)
		w.fills = w.fills[:k+1] // never beyond cap: one fill per request of a batch
		w.fills[k] = append(w.fills[k][:0], q.Key...)
	}
}

// makeValue returns size printable bytes drawn from seed.
func makeValue(size int, seed uint64) []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	g := NewGenerator(Workload{Keys: len(alphabet), Dist: DistUniform, Gets: 1}, seed, 1<<63)
	v := make([]byte, size)
	for i := range v {
		_, k := g.Next()
		v[i] = alphabet[k]
	}
	return v
}

// warmSeed is added to a run's seed for its warm-up run (Warm), so that the run
// measured afterwards does not replay the warm-up's requests.
const warmSeed = 1 << 32

// Warm readies a server for cfg's workload without measuring it. For PatternMix it
// is Prefill: every key set once, so that GETs find values. For PatternCache it
// runs the workload itself once, unmeasured, with another seed (the same hot
// keys, another order): setting every key would fill a cache bounded below the
// keyspace with its coldest keys, the last ones set, where a cache in use holds
// its hottest.
func Warm(ctx context.Context, cfg Config) error {
	if !cfg.Workload.cache() {
		return Prefill(ctx, cfg)
	}
	cfg.Seed += warmSeed
	cfg.Progress = nil
	if _, err := Run(ctx, cfg); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	return nil
}

// Prefill sets every key of cfg's workload once, over cfg.Conns connections with
// batches of at least 64 requests, so that GETs of a later run find values. It is
// bounded by cfg's time limit and ctx.
func Prefill(ctx context.Context, cfg Config) error {
	cfg = cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.limit())
	defer cancel()
	value := makeValue(cfg.Workload.ValueSize, cfg.Seed)
	conns := min(cfg.Conns, cfg.Workload.Keys)
	depth := max(cfg.Pipeline, 64)
	var next atomic.Int64
	errc := make(chan error, conns)
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- prefillConn(ctx, cfg, value, depth, &next)
		}()
	}
	wg.Wait()
	close(errc)
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("prefill %s: %w", cfg.Name, err)
	}
	return nil
}

func prefillConn(ctx context.Context, cfg Config, value []byte, depth int, next *atomic.Int64) error {
	c, err := Dial(cfg.Protocol, cfg.Target, cfg.DialTimeout)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	reqs := make([]Request, 0, depth)
	keys := make([][]byte, depth)
	var failures int
	for ctx.Err() == nil {
		from := int(next.Add(int64(depth))) - depth
		if from >= cfg.Workload.Keys {
			break
		}
		reqs = reqs[:0]
		for i := 0; i < depth && from+i < cfg.Workload.Keys; i++ {
			keys[i] = cfg.Workload.AppendKey(keys[i][:0], from+i)
			reqs = append(reqs, Request{Op: OpSet, Key: keys[i]})
		}
		if err := c.SetDeadline(time.Now().Add(cfg.IOTimeout)); err != nil {
			return err
		}
		if err := c.Batch(reqs, value, func(_ int, reply Reply) {
			if reply == ReplyError {
				failures++
			}
		}); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if failures > 0 {
		return fmt.Errorf("bench: %d sets failed", failures)
	}
	return nil
}

package proxy

import (
	"context"
	"time"

	"github.com/dynakv/dynakv/record"
)

// DBSize returns the number of keys, as Redis's DBSIZE: keys whose values expired but
// were not yet reaped still count.
func (p *Proxy) DBSize(ctx context.Context) (int64, error) {
	if err := p.checkFlush(ctx); err != nil {
		return 0, err
	}
	return p.co.Count(ctx)
}

// Scan returns one page of keys matching pattern (Redis glob; "" or "*" matches all),
// visiting about count records, and the cursor to continue from (0 when done).
func (p *Proxy) Scan(ctx context.Context, cursor uint64, pattern string, count int) (uint64, [][]byte, error) {
	if err := p.checkFlush(ctx); err != nil {
		return 0, nil, err
	}
	count = max(count, 1)
	now := p.now()
	all := pattern == "" || pattern == "*"
	var keys [][]byte
	next, err := p.co.ScanPage(ctx, cursor, count, func(key []byte, rec record.Record) bool {
		if !exists(rec, now) {
			return false
		}
		if all || Match(pattern, key) {
			keys = append(keys, append([]byte(nil), key...))
		}
		return true
	})
	return next, keys, err
}

// Keys returns every key matching pattern.
func (p *Proxy) Keys(ctx context.Context, pattern string) ([][]byte, error) {
	var out [][]byte
	cursor := uint64(0)
	for {
		next, keys, err := p.Scan(ctx, cursor, pattern, 1000)
		if err != nil {
			return nil, err
		}
		out = append(out, keys...)
		if next == 0 {
			return out, nil
		}
		cursor = next
	}
}

// randomKeySample is how many keys RandomKey gathers from its random starting point
// before it picks one of them.
const randomKeySample = 16

// RandomKey returns a random existing key; ok is false when there is none. It scans
// from a random point of the key order (wrapping around) until it has gathered
// randomKeySample live keys or seen them all, and picks one of those at random: so
// every key of a keyspace of up to randomKeySample keys is equally likely, and a key
// after a long gap in hash order is not much more likely than its neighbours.
func (p *Proxy) RandomKey(ctx context.Context) (key []byte, ok bool, err error) {
	if err := p.checkFlush(ctx); err != nil {
		return nil, false, err
	}
	now := p.now()
	p.randMu.Lock()
	start := p.cfg.Rand.Uint64()
	p.randMu.Unlock()
	var sample [][]byte
	seen := map[string]bool{}
	visit := func(k []byte, rec record.Record) bool {
		if !exists(rec, now) || seen[string(k)] || len(sample) >= randomKeySample {
			return false
		}
		seen[string(k)] = true
		sample = append(sample, append([]byte(nil), k...))
		return true
	}
	// From the random point to the end, then from the start around to it.
	if err := p.scanFrom(ctx, start, visit, func() bool { return len(sample) >= randomKeySample }); err != nil {
		return nil, false, err
	}
	if len(sample) < randomKeySample {
		if err := p.scanFrom(ctx, 0, visit, func() bool { return len(sample) >= randomKeySample }); err != nil {
			return nil, false, err
		}
	}
	if len(sample) == 0 {
		return nil, false, nil
	}
	p.randMu.Lock()
	i := p.cfg.Rand.IntN(len(sample))
	p.randMu.Unlock()
	return sample[i], true, nil
}

// scanFrom scans pages from cursor to the end of the key order, until done.
func (p *Proxy) scanFrom(ctx context.Context, cursor uint64, visit func([]byte, record.Record) bool, done func() bool) error {
	for {
		next, err := p.co.ScanPage(ctx, cursor, randomKeySample, visit)
		if err != nil || done() || next == 0 {
			return err
		}
		cursor = next
	}
}

// exists reports whether a plain read of rec finds the key (resolve's rule).
func exists(rec record.Record, now int64) bool {
	_, ok := resolve(rec, now)
	return ok
}

// FlushAll deletes every key now, or, with a positive delay, invalidates everything
// written before now+delay once that time comes (memcached's flush_all with delay).
func (p *Proxy) FlushAll(ctx context.Context, delay time.Duration) error {
	if delay < 0 {
		return ErrInvalidFlush
	}
	if delay == 0 {
		p.pendingFlush.Store(0)
		return p.co.FlushAll(ctx)
	}
	p.pendingFlush.Store(p.cfg.Now().Add(delay).UnixMilli())
	return nil
}

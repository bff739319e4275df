package proxy

import (
	"context"
	"time"

	"github.com/dynakv/dynakv/vclock"
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
	next, err := p.co.ScanPage(ctx, cursor, count, func(key []byte, rec vclock.Set) bool {
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

// RandomKey returns a random existing key; ok is false when there is none.
func (p *Proxy) RandomKey(ctx context.Context) (key []byte, ok bool, err error) {
	if err := p.checkFlush(ctx); err != nil {
		return nil, false, err
	}
	now := p.now()
	p.randMu.Lock()
	start := p.cfg.Rand.Uint64()
	p.randMu.Unlock()
	visit := func(k []byte, rec vclock.Set) bool {
		if exists(rec, now) {
			key, ok = append([]byte(nil), k...), true
		}
		return ok
	}
	// From a random point to the end, then from the start around to it.
	for cursor := start; ; {
		next, err := p.co.ScanPage(ctx, cursor, 1, visit)
		if err != nil || ok {
			return key, ok, err
		}
		if next == 0 {
			break
		}
		cursor = next
	}
	for cursor := uint64(0); ; {
		next, err := p.co.ScanPage(ctx, cursor, 1, visit)
		if err != nil || ok || next == 0 {
			return key, ok, err
		}
		cursor = next
	}
}

func exists(rec vclock.Set, now int64) bool {
	for v := range rec.Values() {
		if live(v, now) {
			return true
		}
	}
	return false
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

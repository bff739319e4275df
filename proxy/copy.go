package proxy

import (
	"bytes"
	"context"
	"errors"
)

// Errors of Copy.
var (
	// ErrNoSuchKey: the source of a move (RENAME) does not exist.
	ErrNoSuchKey = errors.New("proxy: no such key")
	// ErrSameKey: a copy (COPY) whose source and destination are the same key.
	ErrSameKey = errors.New("proxy: source and destination objects are the same")
)

// CopyOptions are the options of Copy.
type CopyOptions struct {
	// Replace overwrites an existing destination; without it Copy does nothing when
	// the destination exists (COPY without REPLACE, RENAMENX).
	Replace bool
	// Move deletes the source after copying it (RENAME, RENAMENX); a missing source
	// is then ErrNoSuchKey instead of no copy.
	Move bool
}

// Copy copies src's value, flags and expiry to dst, and with o.Move deletes src:
// Redis's COPY (without Move) and RENAME/RENAMENX (with Move). It reports whether it
// copied: false when src does not exist (COPY) or dst exists without o.Replace.
//
// Each key is its own Dynamo object, so the steps are separate operations, each
// durable before the next: read src, write dst (with NX unless o.Replace), then
// delete src only if it still holds what was read (its cas unique), so a write to
// src that lands in between is kept, as if it came after the move. Siblings of src
// are not copied: dst gets the value a plain read of src returns.
//
// Moving a key onto itself copies nothing and reports whether it could have (it
// exists and o.Replace); copying a key onto itself is ErrSameKey.
func (p *Proxy) Copy(ctx context.Context, src, dst []byte, o CopyOptions) (bool, error) {
	same := bytes.Equal(src, dst)
	if same && !o.Move {
		return false, ErrSameKey
	}
	cur, err := p.Do(ctx, Op{Kind: OpGet, Key: src})
	if err != nil {
		return false, err
	}
	if !cur.Found {
		if o.Move {
			return false, ErrNoSuchKey
		}
		return false, nil
	}
	if same {
		return o.Replace, nil
	}
	set := Op{Kind: OpSet, Key: dst, Value: cur.Item.Value, Flags: cur.Item.Flags, Expiry: cur.Item.Expiry}
	if !o.Replace {
		set.Cond = CondNX
	}
	res, err := p.Do(ctx, set)
	if err != nil {
		return false, err
	}
	if res.Status != Stored {
		return false, nil
	}
	if o.Move {
		if _, err := p.Do(ctx, Op{Kind: OpDelete, Key: src, CAS: cur.Item.CAS}); err != nil {
			return false, err
		}
	}
	return true, nil
}

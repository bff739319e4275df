package storage

import (
	"math/bits"
	"sync"
	"sync/atomic"
)

// keyFilter answers "might a record be stored under this key hash?" without a
// false negative, so a write of a key the store has never held (a bulk load, a
// cache fill, a new session) skips Pebble's read of it: on an LSM that read of a
// missing key walks the memtables and one table per level, and a profile of a
// 1,000,000-key `redis-cli --pipe` load spent 36% of the node's CPU in it.
//
// It is a scalable Bloom filter over the keys' 64-bit hashes (ring.KeyHash, the
// h of the data key): a stack of layers, each sized for twice the keys of the one
// before, answering yes when any layer might hold the hash; new hashes go into the
// newest layer, and a full layer gets a successor. Nothing is ever removed: a
// deleted, dropped or purged key keeps answering yes, which costs only the read it
// would have cost anyway.
//
// Invariant (no false negatives): every hash of a record in the store is in the
// filter from the moment its write is staged until the store closes. Open adds
// every stored record's hash while it counts them (loadCounts), before the store
// serves anything; every later record is created through staged.restage, which
// adds the hash before the batch commits, under the key's lock, so no reader of
// the key (a write holds the lock through its read) can miss a record the filter
// denies. Anything that writes a data key by another path must add it too.
type keyFilter struct {
	layers atomic.Pointer[[]*filterLayer]
	grow   sync.Mutex // held to add a layer
}

// filterLayer is one Bloom filter of m bits (a power of two) with k probes, meant
// for capacity hashes; n counts the hashes added.
type filterLayer struct {
	words    []atomic.Uint64
	mask     uint64 // m - 1
	capacity int64
	n        atomic.Int64
}

const (
	filterBitsPerKey = 10 // about 1% false positives at capacity with filterProbes
	filterProbes     = 7
	filterMinKeys    = 1 << 16
)

// newKeyFilter returns a filter whose first layer holds at least keys hashes.
func newKeyFilter(keys int64) *keyFilter {
	f := &keyFilter{}
	layers := []*filterLayer{newFilterLayer(max(keys, filterMinKeys))}
	f.layers.Store(&layers)
	return f
}

func newFilterLayer(keys int64) *filterLayer {
	m := uint64(1) << bits.Len64(uint64(keys*filterBitsPerKey-1)) // a power of two >= keys*bits
	return &filterLayer{words: make([]atomic.Uint64, m/64), mask: m - 1, capacity: keys}
}

// probes calls fn with the k bit positions of h (double hashing over h's two halves).
func (l *filterLayer) probes(h uint64, fn func(bit uint64) bool) bool {
	h1, h2 := h, (h>>32|h<<32)|1
	for i := uint64(0); i < filterProbes; i++ {
		if !fn((h1 + i*h2) & l.mask) {
			return false
		}
	}
	return true
}

func (l *filterLayer) has(h uint64) bool {
	return l.probes(h, func(b uint64) bool { return l.words[b/64].Load()&(1<<(b%64)) != 0 })
}

func (l *filterLayer) add(h uint64) {
	l.probes(h, func(b uint64) bool {
		if w := &l.words[b/64]; w.Load()&(1<<(b%64)) == 0 {
			w.Or(1 << (b % 64))
		}
		return true
	})
	l.n.Add(1)
}

// mayHold reports whether a record with key hash h might be stored; false means
// it certainly is not.
func (f *keyFilter) mayHold(h uint64) bool {
	for _, l := range *f.layers.Load() {
		if l.has(h) {
			return true
		}
	}
	return false
}

// add records that a record with key hash h is (or is about to be) stored.
// Safe for concurrent use.
func (f *keyFilter) add(h uint64) {
	layers := *f.layers.Load()
	last := layers[len(layers)-1]
	if last.n.Load() >= last.capacity {
		last = f.addLayer(last)
	}
	last.add(h)
}

// addLayer adds a layer twice the size of full unless another goroutine did,
// and returns the newest layer.
func (f *keyFilter) addLayer(full *filterLayer) *filterLayer {
	f.grow.Lock()
	defer f.grow.Unlock()
	layers := *f.layers.Load()
	if last := layers[len(layers)-1]; last != full {
		return last
	}
	next := append(layers[:len(layers):len(layers)], newFilterLayer(full.capacity*2))
	f.layers.Store(&next)
	return next[len(next)-1]
}

// bytes is the filter's memory, for the node's accounting.
func (f *keyFilter) bytes() int64 {
	var n int64
	for _, l := range *f.layers.Load() {
		n += int64(len(l.words)) * 8
	}
	return n
}

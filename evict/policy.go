package evict

import (
	"errors"
	"fmt"
	"strings"
)

// ErrPolicy is returned for a name that is not one of Redis's maxmemory policies.
var ErrPolicy = errors.New("evict: unknown maxmemory-policy")

// Policy is a Redis maxmemory-policy. The zero value is NoEviction.
type Policy uint8

// The eight policies of Redis's maxmemory-policy.
const (
	NoEviction     Policy = iota // refuse growing writes over the limit
	AllKeysLRU                   // any key, least recently used first
	AllKeysLFU                   // any key, least frequently used first
	AllKeysRandom                // any key, at random
	VolatileLRU                  // keys with an expiry, least recently used first
	VolatileLFU                  // keys with an expiry, least frequently used first
	VolatileRandom               // keys with an expiry, at random
	VolatileTTL                  // keys with an expiry, soonest expiry first
	numPolicies
)

var policyNames = [numPolicies]string{
	NoEviction:     "noeviction",
	AllKeysLRU:     "allkeys-lru",
	AllKeysLFU:     "allkeys-lfu",
	AllKeysRandom:  "allkeys-random",
	VolatileLRU:    "volatile-lru",
	VolatileLFU:    "volatile-lfu",
	VolatileRandom: "volatile-random",
	VolatileTTL:    "volatile-ttl",
}

// Policies returns the eight policies, in Redis's documentation order.
func Policies() []Policy {
	return []Policy{VolatileLRU, AllKeysLRU, VolatileLFU, AllKeysLFU, VolatileRandom, AllKeysRandom, VolatileTTL, NoEviction}
}

// ParsePolicy returns the policy named s, ignoring case as Redis's CONFIG SET does.
func ParsePolicy(s string) (Policy, error) {
	for p, name := range policyNames {
		if strings.EqualFold(s, name) {
			return Policy(p), nil
		}
	}
	return 0, fmt.Errorf("%w: %q", ErrPolicy, s)
}

// String returns the policy's Redis name.
func (p Policy) String() string {
	if p < numPolicies {
		return policyNames[p]
	}
	return fmt.Sprintf("Policy(%d)", uint8(p))
}

// MarshalText implements encoding.TextMarshaler with the Redis name.
func (p Policy) MarshalText() ([]byte, error) {
	if p >= numPolicies {
		return nil, fmt.Errorf("%w: %d", ErrPolicy, uint8(p))
	}
	return []byte(p.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler (ParsePolicy).
func (p *Policy) UnmarshalText(b []byte) error {
	v, err := ParsePolicy(string(b))
	if err == nil {
		*p = v
	}
	return err
}

// Evicts reports whether the policy evicts at all (every policy but noeviction).
func (p Policy) Evicts() bool { return p != NoEviction && p < numPolicies }

// Volatile reports whether only keys with an expiry may be evicted
// (Redis's volatile-* policies, which sample the expires dict).
func (p Policy) Volatile() bool {
	return p == VolatileLRU || p == VolatileLFU || p == VolatileRandom || p == VolatileTTL
}

// Random reports whether the victim is any sampled key (allkeys-random,
// volatile-random): no score, no pool, no access words.
func (p Policy) Random() bool { return p == AllKeysRandom || p == VolatileRandom }

// Pooled reports whether the policy ranks candidates in a Pool (LRU, LFU and
// TTL policies, as Redis's performEvictions does).
func (p Policy) Pooled() bool { return p.Kind() != KindNone || p == VolatileTTL }

// Kind returns what the access words of a Table must hold for the policy:
// KindLRU, KindLFU, or KindNone when it needs none (random, ttl, noeviction).
func (p Policy) Kind() Kind {
	switch p {
	case AllKeysLRU, VolatileLRU:
		return KindLRU
	case AllKeysLFU, VolatileLFU:
		return KindLFU
	}
	return KindNone
}

// Kind is what a Table's words hold.
type Kind uint8

// The kinds of access words.
const (
	KindNone Kind = iota // no words: the policy needs no access information
	KindLRU              // LRU stamps (LRUClock)
	KindLFU              // LFU words: minutes<<8 | logarithmic counter
)

func (k Kind) String() string {
	switch k {
	case KindLRU:
		return "lru"
	case KindLFU:
		return "lfu"
	}
	return "none"
}

package evict

import (
	"errors"
	"testing"
)

func TestPolicies(t *testing.T) {
	tests := []struct {
		name                           string
		p                              Policy
		evicts, volatile, random, pool bool
		kind                           Kind
	}{
		{"noeviction", NoEviction, false, false, false, false, KindNone},
		{"allkeys-lru", AllKeysLRU, true, false, false, true, KindLRU},
		{"allkeys-lfu", AllKeysLFU, true, false, false, true, KindLFU},
		{"allkeys-random", AllKeysRandom, true, false, true, false, KindNone},
		{"volatile-lru", VolatileLRU, true, true, false, true, KindLRU},
		{"volatile-lfu", VolatileLFU, true, true, false, true, KindLFU},
		{"volatile-random", VolatileRandom, true, true, true, false, KindNone},
		{"volatile-ttl", VolatileTTL, true, true, false, true, KindNone},
	}
	if len(tests) != len(Policies()) {
		t.Fatalf("%d policies tested, %d exist", len(tests), len(Policies()))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, s := range []string{tt.name, upper(tt.name)} {
				p, err := ParsePolicy(s)
				if err != nil || p != tt.p {
					t.Fatalf("ParsePolicy(%q) = %v, %v; want %v", s, p, err, tt.p)
				}
			}
			if got := tt.p.String(); got != tt.name {
				t.Errorf("String() = %q", got)
			}
			var back Policy
			if b, err := tt.p.MarshalText(); err != nil || back.UnmarshalText(b) != nil || back != tt.p {
				t.Errorf("text round trip: %q %v -> %v", b, err, back)
			}
			if tt.p.Evicts() != tt.evicts || tt.p.Volatile() != tt.volatile || tt.p.Random() != tt.random ||
				tt.p.Pooled() != tt.pool || tt.p.Kind() != tt.kind {
				t.Errorf("flags: evicts %v volatile %v random %v pooled %v kind %v", tt.p.Evicts(),
					tt.p.Volatile(), tt.p.Random(), tt.p.Pooled(), tt.p.Kind())
			}
		})
	}
	for _, bad := range []string{"", "lru", "allkeys-lru ", "volatile_lru"} {
		if _, err := ParsePolicy(bad); !errors.Is(err, ErrPolicy) {
			t.Errorf("ParsePolicy(%q) = %v, want ErrPolicy", bad, err)
		}
	}
	if _, err := Policy(200).MarshalText(); !errors.Is(err, ErrPolicy) {
		t.Errorf("MarshalText of a bad policy: %v", err)
	}
	if Policy(200).Evicts() {
		t.Error("a bad policy evicts")
	}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

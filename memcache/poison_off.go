//go:build !poison

package memcache

// poison: see poison_on.go.
const poison = false

//go:build !poison

package resp

// poison: see poison_on.go.
const poison = false

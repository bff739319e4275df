package storage

// WithStripes returns cfg with n key lock stripes (a power of two) instead of
// lockStripes, for the external tests that take every stripe of a partition many
// times under -race (Merkle tree rebuilds).
func WithStripes(cfg Config, n int) Config {
	cfg.stripes = n
	return cfg
}

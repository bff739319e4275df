//go:build race

package coordinator_test

// defaultSimSeeds is how many seeds TestSim runs by default. Under the race
// detector a seed costs about ten times as much, and 500 of them were 80 s of
// `make test`: 150 still draw every combination of simParams' switches (churn,
// expiry, evict, batched, blind) several times over, which is what the race
// detector needs to see; the seeds' histories are checked over a wider range
// without it, by CI's `make soak SEEDS=1000` (.ci/run) and by `make soak`.
const defaultSimSeeds = 150

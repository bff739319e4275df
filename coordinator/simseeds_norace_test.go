//go:build !race

package coordinator_test

// defaultSimSeeds is how many seeds TestSim runs by default (150 under the race
// detector: simseeds_race_test.go).
const defaultSimSeeds = 500

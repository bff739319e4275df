// Package compat holds tests that build the real dynakv binary, start it as separate
// processes on loopback, and drive it with real clients (go-redis, gomemcache,
// redis-cli, redis-benchmark, and in TestClients also redis-py, pymemcache,
// ioredis and node-redis through the scripts under clients/) and real faults
// (SIGTERM, SIGKILL). The nodes' command lines and processes come from
// internal/launch (harness_test.go's startNode, startCluster and startClusterNode
// wrap it for tests). Tools that are not installed are skipped with a message;
// `make tools` (and .ci/run) install them.
package compat

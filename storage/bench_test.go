package storage

import (
	"fmt"
	"testing"

	"github.com/dynakv/dynakv/record"
)

// BenchmarkUpdate measures one read-merge-write of a 100-byte value on disk in
// each sync mode, and in memory mode (Config.InMemory, where maxmemory matters).
func BenchmarkUpdate(b *testing.B) {
	for _, mode := range []struct {
		name string
		cfg  Config
	}{
		{string(SyncInterval), Config{Sync: SyncInterval}},
		{string(SyncAlways), Config{Sync: SyncAlways}},
		{string(SyncNone), Config{Sync: SyncNone}},
		{"memory", Config{Sync: SyncNone, InMemory: true}},
	} {
		b.Run(mode.name, func(b *testing.B) {
			cfg := mode.cfg
			cfg.Partitions = 1024
			if !cfg.InMemory {
				cfg.Dir = b.TempDir()
			}
			s := open(b, cfg)
			keys := benchKeys(1000)
			v := rec(val(string(make([]byte, 100)), 0))
			fn := func(record.Record, bool) (record.Record, error) { return v, nil }
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, err := s.Update(keys[i%len(keys)], fn); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkUpdateParallel is BenchmarkUpdate from many goroutines: Pebble batches
// concurrent commits into one WAL sync. ThenSync is a deferred write followed by
// its own Sync, two commits where Sync makes one: what a lone command of a
// connection costs when it does not commit with its sync.
func BenchmarkUpdateParallel(b *testing.B) {
	for _, mode := range []struct {
		name  string
		sync  SyncMode
		write func(s *Store, key []byte, fn UpdateFunc) error
	}{
		{"interval", SyncInterval, func(s *Store, key []byte, fn UpdateFunc) error { _, err := s.Update(key, fn); return err }},
		{"always", SyncAlways, func(s *Store, key []byte, fn UpdateFunc) error { _, err := s.Update(key, fn); return err }},
		{"always/ThenSync", SyncAlways, func(s *Store, key []byte, fn UpdateFunc) error {
			if _, err := s.UpdateNoSync(key, fn); err != nil {
				return err
			}
			return s.Sync()
		}},
		{"none", SyncNone, func(s *Store, key []byte, fn UpdateFunc) error { _, err := s.Update(key, fn); return err }},
	} {
		b.Run(mode.name, func(b *testing.B) {
			s := open(b, Config{Dir: b.TempDir(), Partitions: 1024, Sync: mode.sync})
			keys := benchKeys(10000)
			v := rec(val(string(make([]byte, 100)), 0))
			fn := func(record.Record, bool) (record.Record, error) { return v, nil }
			b.ReportAllocs()
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if err := mode.write(s, keys[i%len(keys)], fn); err != nil {
						b.Error(err)
						return
					}
					i += 7
				}
			})
		})
	}
}

func BenchmarkGet(b *testing.B) {
	s := open(b, Config{Dir: b.TempDir(), Partitions: 1024, Sync: SyncNone})
	keys := benchKeys(10000)
	v := rec(val(string(make([]byte, 100)), 0))
	for _, k := range keys {
		if _, err := s.Update(k, func(record.Record, bool) (record.Record, error) { return v, nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, found, err := s.Get(keys[i%len(keys)]); err != nil || !found {
			b.Fatal(found, err)
		}
	}
}

func benchKeys(n int) [][]byte {
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "bench:key:%08d", i)
	}
	return keys
}

// BenchmarkWriteSet compares one commit for N writes (a WriteSet, as an event
// loop stages an iteration's writes) with N commits (Update, one by one), per
// write, on disk in each sync mode. One goroutine: the group commit has no one
// to group with, which is the loop's case.
func BenchmarkWriteSet(b *testing.B) {
	const n = 64
	for _, mode := range []SyncMode{SyncAlways, SyncInterval, SyncNone} {
		for _, way := range []string{"set", "updates"} {
			b.Run(fmt.Sprintf("%s/%s", mode, way), func(b *testing.B) {
				s := open(b, Config{Dir: b.TempDir(), Partitions: 1024, Sync: mode})
				keys := benchKeys(10000)
				v := rec(val(string(make([]byte, 100)), 0))
				fn := func(record.Record, bool) (record.Record, error) { return v, nil }
				ws := s.NewWriteSet()
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; b.Loop(); i++ {
					k := keys[i%len(keys)]
					if way == "updates" {
						if _, err := s.Update(k, fn); err != nil {
							b.Fatal(err)
						}
						continue
					}
					if _, err := ws.Update(k, fn); err != nil {
						b.Fatal(err)
					}
					if ws.Len() == n {
						if err := ws.Commit(true); err != nil {
							b.Fatal(err)
						}
					}
				}
				if err := ws.Commit(true); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}

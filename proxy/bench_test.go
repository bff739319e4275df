package proxy_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/dynakv/dynakv/coordinator"
	"github.com/dynakv/dynakv/proxy"
	"github.com/dynakv/dynakv/storage"
)

// BenchmarkPipelinedSet runs SETs through the proxy as a front end does for one
// connection, in batches of 1 (a lone command: one synced commit) and 16 (a
// pipelined batch: the writes share one WAL sync, group commit), from 8
// connections per CPU, on a disk store that fsyncs (--fsync always).
func BenchmarkPipelinedSet(b *testing.B) {
	for _, batch := range []int{1, 16} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			p := diskProxy(b)
			ctx := context.Background()
			b.ReportAllocs()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				sess := p.NewSession(func() bool { return (i+1)%batch != 0 })
				for ; pb.Next(); i++ {
					op := proxy.Op{Kind: proxy.OpSet, Key: fmt.Appendf(nil, "k%d", i%10000), Value: make([]byte, 100)}
					if _, err := sess.Do(ctx, op); err != nil {
						b.Error(err)
						return
					}
					if (i+1)%batch == 0 {
						if err := sess.Flush(ctx); err != nil {
							b.Error(err)
							return
						}
					}
				}
			})
		})
	}
}

// BenchmarkTrySet runs SETs the way an event loop's fast path does: Session.Try
// stages each in the loop's write set, committed every 64 writes (one Pebble
// commit with its sync, as BeforeSleep does for an iteration), on one
// goroutine, on a disk store that fsyncs. Its profile is the cost of one
// inline write.
func BenchmarkTrySet(b *testing.B) {
	p := diskProxy(b)
	ws := p.NewWriteSet()
	if ws == nil {
		b.Fatal("no write set")
	}
	sess := p.NewSession(nil)
	ctx := context.Background()
	keys := make([][]byte, 100000)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "key:%012d", i)
	}
	value := make([]byte, 100)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		op := proxy.Op{Kind: proxy.OpSet, Key: keys[i%len(keys)], Value: value}
		if _, err := sess.Try(ctx, op, ws); err != nil {
			b.Fatal(err)
		}
		sess.TakeStaged()
		if ws.Len() == 64 {
			if err := ws.Commit(); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := ws.Commit(); err != nil {
		b.Fatal(err)
	}
}

// diskProxy returns a proxy over a one-node coordinator on a disk store that
// fsyncs (--fsync always); the benchmark's cleanup closes them.
func diskProxy(b *testing.B) *proxy.Proxy {
	st, err := storage.Open(storage.Config{Dir: b.TempDir(), Sync: storage.SyncAlways, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	co, err := coordinator.New(coordinator.Config{Actor: "n1"}, st)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { co.Close() })
	return proxy.New(proxy.Config{}, co)
}

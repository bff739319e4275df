package proxy_test

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/dynakv/dynakv/coordinator"
	"github.com/dynakv/dynakv/proxy"
	"github.com/dynakv/dynakv/storage"
)

// gatedCoordinator holds FlushAll until released and reports writes, so a test can
// run a command while a delayed flush is in progress.
type gatedCoordinator struct {
	*coordinator.Coordinator
	flushing chan struct{} // closed when FlushAll starts
	release  chan struct{} // FlushAll proceeds once closed
	modified chan string   // the key of every Modify
}

var _ proxy.Coordinator = (*gatedCoordinator)(nil)

func (g *gatedCoordinator) FlushAll(ctx context.Context) error {
	close(g.flushing)
	<-g.release
	return g.Coordinator.FlushAll(ctx)
}

func (g *gatedCoordinator) Modify(ctx context.Context, key []byte, fn coordinator.ModifyFunc, opt coordinator.WriteOptions) (coordinator.WriteResult, error) {
	g.modified <- string(key)
	return g.Coordinator.Modify(ctx, key, fn, opt)
}

// TestDelayedFlushBlocksConcurrentCommands: when a delayed flush_all falls due, the
// command that runs it and every command arriving meanwhile must see the flushed
// keyspace. Before the fix, a second command saw the flush already claimed, wrote
// its key at once, and the flush then dropped that acknowledged write.
func TestDelayedFlushBlocksConcurrentCommands(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	st, err := storage.Open(storage.Config{InMemory: true, Partitions: 16, Now: clk.Now, ReapInterval: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	co, err := coordinator.New(coordinator.Config{Actor: "n1", Now: clk.Now}, st)
	if err != nil {
		t.Fatal(err)
	}
	g := &gatedCoordinator{Coordinator: co, flushing: make(chan struct{}), release: make(chan struct{}), modified: make(chan string, 10)}
	p := proxy.New(proxy.Config{Now: clk.Now}, g)
	if _, err := p.Do(ctx, proxy.Op{Kind: proxy.OpSet, Key: []byte("old"), Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	<-g.modified
	if err := p.FlushAll(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)

	var wg sync.WaitGroup
	wg.Go(func() { // runs the due flush
		if _, err := p.Do(ctx, proxy.Op{Kind: proxy.OpGet, Key: []byte("x")}); err != nil {
			t.Error(err)
		}
	})
	<-g.flushing
	wg.Go(func() { // arrives while the flush is in progress
		if _, err := p.Do(ctx, proxy.Op{Kind: proxy.OpSet, Key: []byte("new"), Value: []byte("v")}); err != nil {
			t.Error(err)
		}
	})
	select {
	case k := <-g.modified:
		t.Errorf("SET %s ran while the due flush was still in progress", k)
	case <-time.After(100 * time.Millisecond): // only bounds how long we look for the bug
	}
	close(g.release)
	wg.Wait()
	res, err := p.Do(ctx, proxy.Op{Kind: proxy.OpGet, Key: []byte("new")})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Found {
		t.Fatal("a SET acknowledged after the flush time was dropped by the flush")
	}
	if res, _ := p.Do(ctx, proxy.Op{Kind: proxy.OpGet, Key: []byte("old")}); res.Found {
		t.Fatal("the delayed flush did not drop the old key")
	}
}

// TestConcurrentKeyspaceCommands runs every keyspace command concurrently with
// writes; -race checks the proxy's shared state (RANDOMKEY's generator included).
func TestConcurrentKeyspaceCommands(t *testing.T) {
	ctx := context.Background()
	e := newDirectEnv(t, proxy.Config{Rand: rand.New(rand.NewPCG(5, 6))})
	for i := range 50 {
		e.set(string(rune('a'+i%26))+string(rune('a'+i/26)), "v")
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 100 {
				var err error
				switch (i + w) % 5 {
				case 0:
					_, _, err = e.p.RandomKey(ctx)
				case 1:
					_, _, err = e.p.Scan(ctx, 0, "*", 10)
				case 2:
					_, err = e.p.DBSize(ctx)
				case 3:
					_, err = e.p.Do(ctx, proxy.Op{Kind: proxy.OpSet, Key: []byte{byte('A' + w)}, Value: []byte("v")})
				case 4:
					_, err = e.p.Keys(ctx, "a*")
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

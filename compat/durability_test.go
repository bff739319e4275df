package compat

import (
	"fmt"
	"sync"
	"syscall"
	"testing"
)

// TestRestartKeepsAcknowledgedWrites writes from several clients, stops the node
// with SIGTERM or kills it with SIGKILL mid-load, restarts it on the same data
// directory and checks that every acknowledged write is there, with --fsync
// interval (the default) and always: the loops' write set commits (issue 19)
// take the store's sync in both.
func TestRestartKeepsAcknowledgedWrites(t *testing.T) {
	for _, tc := range []struct {
		sig   syscall.Signal
		fsync string
	}{{syscall.SIGTERM, "interval"}, {syscall.SIGKILL, "interval"}, {syscall.SIGKILL, "always"}} {
		sig := tc.sig
		t.Run(sig.String()+"/"+tc.fsync, func(t *testing.T) {
			p := startNode(t, "--fsync", tc.fsync)
			const writers, perWriter = 8, 400
			var (
				mu    sync.Mutex
				acked = map[string]string{}
				wg    sync.WaitGroup
			)
			killAfter := make(chan struct{})
			var once sync.Once
			for w := 0; w < writers; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					c := newRedis(p.RESP, 2)
					defer c.Close()
					for i := 0; i < perWriter; i++ {
						k, v := fmt.Sprintf("w%d:%d", w, i), fmt.Sprintf("v%d", i)
						if err := c.Set(ctx(t), k, v, 0).Err(); err != nil {
							return // the node went away: this write was not acknowledged
						}
						mu.Lock()
						acked[k] = v
						n := len(acked)
						mu.Unlock()
						if n == writers*perWriter/2 {
							once.Do(func() { close(killAfter) })
						}
					}
				}(w)
			}
			<-killAfter
			p.signal(sig)
			wg.Wait()
			p.wait()

			p.restart()
			c := newRedis(p.RESP, 2)
			defer c.Close()
			missing := 0
			for k, v := range acked {
				got, err := c.Get(ctx(t), k).Result()
				if err != nil || got != v {
					missing++
					if missing < 5 {
						t.Errorf("%s after %v: got %q, %v; want %q", k, sig, got, err, v)
					}
				}
			}
			if missing > 0 {
				t.Fatalf("%d of %d acknowledged writes lost after %v", missing, len(acked), sig)
			}
			t.Logf("%v: %d acknowledged writes, all present after restart", sig, len(acked))
		})
	}
}

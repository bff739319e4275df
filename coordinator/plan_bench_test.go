package coordinator

import (
	"fmt"
	"testing"

	"github.com/dynakv/dynakv/internal/memstore"
	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/ring"
)

// BenchmarkPlan measures a request's plan (the hot path of every quorum read and
// write) on a 9-node ring, without zones and in 3 zones of 3, with every node
// alive and with one replica of each key down (a fallback stands in).
func BenchmarkPlan(b *testing.B) {
	for _, zones := range []int{1, 3} {
		for _, down := range []bool{false, true} {
			b.Run(fmt.Sprintf("zones=%d/down=%v", zones, down), func(b *testing.B) {
				ms := make([]ring.Member, 9)
				for i := range ms {
					ms[i] = ring.Member{Name: fmt.Sprint("n", i+1)}
					if zones > 1 {
						ms[i].Zone = fmt.Sprint("z", i%zones)
					}
				}
				rg, err := ring.New(1024, ms)
				if err != nil {
					b.Fatal(err)
				}
				dead := map[string]bool{}
				if down {
					dead["n2"] = true
				}
				c, err := New(Config{Actor: "a", Node: "n1", Cluster: staticView{rg, dead},
					Peers: RemotePeers(peer.CallerFunc(nil))}, memstore.New(64))
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				keys := make([][]byte, 1024)
				for i := range keys {
					keys[i] = fmt.Appendf(nil, "key%d", i)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					c.plan(keys[i%len(keys)])
				}
			})
		}
	}
}

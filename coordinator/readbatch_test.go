package coordinator

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/vclock"
)

// countingCaller counts the messages a coordinator sends, by type.
type countingCaller struct {
	peer.Caller
	mu sync.Mutex
	n  map[peer.MsgType]int
}

func (c *countingCaller) Call(ctx context.Context, node string, typ peer.MsgType, req []byte) ([]byte, error) {
	c.mu.Lock()
	c.n[typ]++
	c.mu.Unlock()
	return c.Caller.Call(ctx, node, typ, req)
}

func (c *countingCaller) count(typ peer.MsgType) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[typ]
}

// counted has coordinator node of tc send through a countingCaller.
func counted(tc *testCluster, node string) *countingCaller {
	cc := &countingCaller{Caller: tc.net.Caller(node), n: map[peer.MsgType]int{}}
	tc.cos[node].cfg.Peers = RemotePeers(cc)
	return cc
}

// encoded returns rec's encoding, for comparing records.
func encoded(rec record.Record) string { return string(rec.AppendBinary(nil)) }

// TestGetBatchMatchesGet: on random clusters whose replicas disagree (records
// missing on some owners, stale on others, siblings, keys nobody has), a
// GetBatch through a random coordinator, with a random R or Local, returns for
// every key what Get returns for it (record and error alike), sends at most
// one MsgReadBatch per peer and no single MsgRead for its first calls, and
// leaves the same replicas behind once both reads' repairs are done.
func TestGetBatchMatchesGet(t *testing.T) {
	for seed := range uint64(12) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0x6e7))
			nodes := 3 + rng.IntN(4)
			opt := ReadOptions{R: rng.IntN(4)}
			if rng.IntN(6) == 0 {
				opt = ReadOptions{Local: true}
			}
			nkeys := 1 + rng.IntN(20)
			type state struct {
				recs  []string // per key, as read
				errs  []bool
				repls map[string]string
			}
			var states [2]state
			var batchMsgs, readMsgs int
			for run := range 2 {
				synctest.Test(t, func(t *testing.T) {
					tc := newTestCluster(t, nodes, nil)
					defer tc.Close()
					rng := rand.New(rand.NewPCG(seed, 0x5eed))
					var keys [][]byte
					for k := range nkeys {
						key := fmt.Sprint("gk", k)
						keys = append(keys, []byte(key))
						for j, owner := range tc.prefs(key)[:min(3, nodes)] {
							switch rng.IntN(5) {
							case 0: // missing here
							case 1: // a sibling of its own
								_, err := tc.stores[owner].Update([]byte(key), mergeInto(record.String(vclock.Update(vclock.Set{}, nil, owner+":9", value(fmt.Sprint("s", j)), 1, 1))))
								if err != nil {
									t.Fatal(err)
								}
							default:
								rec := vclock.Update(vclock.Set{}, nil, "w:1", value("v"), 1, 1)
								if rng.IntN(2) == 0 {
									rec = vclock.Update(rec, rec.Join(), "w:1", value("v2"), 2, 2)
								}
								if _, err := tc.stores[owner].Update([]byte(key), mergeInto(record.String(rec))); err != nil {
									t.Fatal(err)
								}
							}
						}
					}
					coord := tc.names[rng.IntN(nodes)]
					cc := counted(tc, coord)
					var st state
					if run == 0 {
						for _, key := range keys {
							rec, err := tc.cos[coord].Get(context.Background(), key, opt)
							st.recs, st.errs = append(st.recs, encoded(rec)), append(st.errs, err != nil)
						}
					} else {
						for _, r := range tc.cos[coord].GetBatch(context.Background(), keys, opt) {
							st.recs, st.errs = append(st.recs, encoded(r.Record)), append(st.errs, r.Err != nil)
						}
						batchMsgs, readMsgs = cc.count(peer.MsgReadBatch), cc.count(peer.MsgRead)
					}
					synctest.Wait() // read repairs done
					st.repls = map[string]string{}
					for _, n := range tc.names {
						for _, key := range keys {
							st.repls[n+"/"+string(key)] = encoded(tc.local(n, string(key)))
						}
					}
					states[run] = st
				})
			}
			get, batch := states[0], states[1]
			for i := range get.recs {
				if get.recs[i] != batch.recs[i] || get.errs[i] != batch.errs[i] {
					t.Errorf("key %d: GetBatch %x (error %v), Get %x (error %v)", i, batch.recs[i], batch.errs[i], get.recs[i], get.errs[i])
				}
			}
			for k, v := range get.repls {
				if batch.repls[k] != v {
					t.Errorf("replica %s after GetBatch %x, after Get %x", k, batch.repls[k], v)
				}
			}
			if batchMsgs > nodes-1 {
				t.Errorf("%d MsgReadBatch for a batch on %d nodes, want at most one per peer", batchMsgs, nodes)
			}
			if !opt.Local && nkeys >= 8 && batchMsgs == 0 {
				t.Errorf("%d keys on %d nodes sent no MsgReadBatch", nkeys, nodes)
			}
			if readMsgs > nodes-1 { // a node asked for one key only gets a MsgRead of its own
				t.Errorf("%d single MsgRead for a batch on %d nodes", readMsgs, nodes)
			}
		})
	}
}

// failingReads is Peers whose batched reads of the keys in fail, at node, fail
// (each with its own error), the others answered as usual: a peer failing for
// part of a batch.
type failingReads struct {
	Peers
	node string
	fail map[string]bool
}

func (f failingReads) ReadBatch(ctx context.Context, node string, reqs []peer.ReadRequest) []peer.ReadResult {
	out := f.Peers.(BatchReader).ReadBatch(ctx, node, reqs)
	if node == f.node {
		for i, r := range reqs {
			if f.fail[string(r.Key)] {
				out[i] = peer.ReadResult{Err: fmt.Errorf("%w: disk error on %s", peer.ErrReplicaRead, r.Key)}
			}
		}
	}
	return out
}

func (f failingReads) Read(ctx context.Context, node string, req peer.ReadRequest) (record.Record, error) {
	if node == f.node && f.fail[string(req.Key)] {
		return record.Record{}, fmt.Errorf("%w: disk error on %s", peer.ErrReplicaRead, req.Key)
	}
	return f.Peers.Read(ctx, node, req)
}

// unbatchedReads is Peers without BatchReader: GetBatch reads each key of a
// node alone.
type unbatchedReads struct{ Peers }

// TestGetBatchPeerFailsForPart: in a GetBatch through one coordinator, a peer
// that fails for part of the batch (some keys' reads fail on it, in the same
// message as others that succeed), or for all of it (it refuses, resets or
// stalls), fails only those calls: each read it failed still reaches R from
// distinct owners, the next replica standing in (its answer shows in the
// record), and every other read returns exactly what it returns without the
// fault. Peers without BatchReader give the same outcomes.
func TestGetBatchPeerFailsForPart(t *testing.T) {
	for _, tt := range []struct {
		name    string
		partial bool // only the keys in fail fail; otherwise every call to the peer
		fault   func(tc *testCluster, co *Coordinator, bad string, fail map[string]bool)
	}{
		{"some keys fail", true, func(tc *testCluster, co *Coordinator, bad string, fail map[string]bool) {
			co.cfg.Peers = failingReads{co.cfg.Peers, bad, fail}
		}},
		{"unbatched, some keys fail", true, func(tc *testCluster, co *Coordinator, bad string, fail map[string]bool) {
			co.cfg.Peers = unbatchedReads{failingReads{co.cfg.Peers, bad, fail}}
		}},
		{"peer refuses", false, func(tc *testCluster, _ *Coordinator, bad string, _ map[string]bool) { tc.net.Crash(bad) }},
		{"peer resets", false, func(tc *testCluster, _ *Coordinator, bad string, _ map[string]bool) { tc.net.Reset(bad, true) }},
		{"peer stalls", false, func(tc *testCluster, _ *Coordinator, bad string, _ map[string]bool) { tc.net.Slow(bad, -1) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			run := func(faulty bool) (out []string, affected []bool) {
				synctest.Test(t, func(t *testing.T) {
					tc := newDetectCluster(t, 6, time.Hour)
					defer tc.Close()
					coord := tc.names[0]
					keys := batchKeys(tc, coord, 16)
					bad := tc.prefs(keys[0])[1] // the peer the first key asks
					fail := map[string]bool{}
					bkeys := make([][]byte, len(keys))
					for i, k := range keys {
						bkeys[i] = []byte(k)
						pl := tc.prefs(k)
						// The first two owners hold a value of their own each,
						// the third nothing: a read answered by the coordinator
						// and the next replica shows one value only.
						for _, o := range pl[:2] {
							rec := vclock.Update(vclock.Set{}, nil, o+":w", value(k+"@"+o), 1, 1)
							if _, err := tc.stores[o].Update([]byte(k), mergeInto(record.String(rec))); err != nil {
								t.Fatal(err)
							}
						}
						fail[k] = pl[1] == bad && i%3 != 1 // the others share the message
						affected = append(affected, pl[1] == bad && (fail[k] || !tt.partial))
					}
					co := tc.cos[coord]
					if faulty {
						tt.fault(tc, co, bad, fail)
					}
					for _, r := range co.GetBatch(context.Background(), bkeys, ReadOptions{}) {
						o := fmt.Sprint(data(r.Record))
						if r.Err != nil {
							o = "error " + r.Err.Error()
						}
						out = append(out, o)
					}
					if n := co.Metrics().ReplicaReadFailures; faulty && tt.name != "peer stalls" && int(n) != count(affected) {
						t.Errorf("%d replica read failures, want one per affected key (%d)", n, count(affected))
					}
					time.Sleep(2 * time.Second) // stalled calls end
				})
				return out, affected
			}
			want, _ := run(false)
			got, affected := run(true)
			if count(affected) < 2 || count(affected) == len(affected) {
				t.Fatalf("affected keys %v: want some, not all", affected)
			}
			for i := range want {
				if affected[i] {
					if !strings.HasPrefix(got[i], "[") || strings.Count(got[i], "@") != 1 || got[i] == want[i] {
						t.Errorf("key %d, affected: read %s, want its own replica's value alone (without the fault %s)", i, got[i], want[i])
					}
					continue
				}
				if got[i] != want[i] {
					t.Errorf("key %d: read %s, without the fault %s", i, got[i], want[i])
				}
			}
		})
	}
}

func count(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// readsCaller answers replica reads like a replica whose read of key "bad"
// fails, with the key as the value otherwise, and records each message's type
// and read count.
type readsCaller struct {
	mu    sync.Mutex
	calls []string // "read" or "batch of N"
}

func (c *readsCaller) Call(_ context.Context, _ string, typ peer.MsgType, req []byte) ([]byte, error) {
	answer := func(r peer.ReadRequest) peer.ReadResult {
		if string(r.Key) == "bad" {
			return peer.ReadResult{Err: fmt.Errorf("disk error")}
		}
		return peer.ReadResult{Record: record.String(vclock.Update(vclock.Set{}, nil, "n1:1", value(string(r.Key)), 1, 0))}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch typ {
	case peer.MsgRead:
		c.calls = append(c.calls, "read")
		r, err := peer.DecodeReadRequest(req)
		if err != nil {
			return nil, err
		}
		res := answer(r)
		return peer.AppendRecordReply(nil, res.Record), res.Err
	case peer.MsgReadBatch:
		reqs, err := peer.DecodeReadBatch(req)
		if err != nil {
			return nil, err
		}
		c.calls = append(c.calls, fmt.Sprintf("batch of %d", len(reqs)))
		out := make([]peer.ReadResult, len(reqs))
		for i, r := range reqs {
			out[i] = answer(r)
		}
		return peer.AppendReadBatchReply(nil, out), nil
	}
	return nil, fmt.Errorf("unexpected message type %d", typ)
}

// TestReadBatchSplits: RemotePeers' ReadBatch sends one read in a MsgRead of
// its own and more as MsgReadBatch messages of at most maxBatchCount reads,
// each read getting its own outcome, in order.
func TestReadBatchSplits(t *testing.T) {
	for _, tt := range []struct {
		n    int
		want []string
	}{
		{1, []string{"read"}},
		{3, []string{"batch of 3"}},
		{maxBatchCount + 4, []string{fmt.Sprint("batch of ", maxBatchCount), "batch of 4"}},
	} {
		caller := &readsCaller{}
		reqs := make([]peer.ReadRequest, tt.n)
		for i := range reqs {
			reqs[i] = peer.ReadRequest{Key: fmt.Appendf(nil, "k%d", i)}
			if i == tt.n-1 {
				reqs[i].Key = []byte("bad")
			}
		}
		res := RemotePeers(caller).(BatchReader).ReadBatch(context.Background(), "n2", reqs)
		if !slices.Equal(caller.calls, tt.want) {
			t.Errorf("%d reads: messages %v, want %v", tt.n, caller.calls, tt.want)
		}
		if len(res) != tt.n {
			t.Fatalf("%d reads: %d outcomes", tt.n, len(res))
		}
		for i, r := range res {
			if i == tt.n-1 {
				if r.Err == nil {
					t.Errorf("%d reads: the bad read succeeded", tt.n)
				}
				continue
			}
			if d := data(r.Record); r.Err != nil || !slices.Equal(d, []string{string(reqs[i].Key)}) {
				t.Errorf("%d reads: read %d: %v, %v", tt.n, i, d, r.Err)
			}
		}
	}
}

// BenchmarkGetBatch compares one GetBatch of 16 keys with 16 Get calls, one
// after another and all at once, on a 3-node cluster over the in-memory peer
// network (no delay) with memstores: the cost of coordination itself,
// messages included. Every key is on every node, so each read asks one peer.
func BenchmarkGetBatch(b *testing.B) {
	const n = 16
	tc := newTestCluster(b, 3, nil)
	defer tc.Close()
	co := tc.cos[tc.names[0]]
	ctx := context.Background()
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "key%d", i)
		if _, err := co.Put(ctx, keys[i], nil, value("value"), WriteOptions{W: 3}); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("batch", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, r := range co.GetBatch(ctx, keys, ReadOptions{}) {
				if r.Err != nil {
					b.Fatal(r.Err)
				}
			}
		}
	})
	b.Run("sequential", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, k := range keys {
				if _, err := co.Get(ctx, k, ReadOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("concurrent", func(b *testing.B) {
		b.ReportAllocs()
		errs := make(chan error, n)
		for b.Loop() {
			for _, k := range keys {
				go func() {
					_, err := co.Get(ctx, k, ReadOptions{})
					errs <- err
				}()
			}
			for range n {
				if err := <-errs; err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

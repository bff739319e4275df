package coordinator

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/vclock"
)

// batchKeys returns n keys whose preference list (on tc's ring) starts with
// coord, none of whose first three owners is in avoid.
func batchKeys(tc *testCluster, coord string, n int, avoid ...string) []string {
	var keys []string
	for i := 0; len(keys) < n; i++ {
		key := fmt.Sprint("bk", i)
		pl := tc.prefs(key)
		if pl[0] == coord && !slices.ContainsFunc(pl[:3], func(o string) bool { return slices.Contains(avoid, o) }) {
			keys = append(keys, key)
		}
	}
	return keys
}

func setTo(v string) ModifyFunc {
	return func(cur record.Record) (vclock.Clock, vclock.Value, error) { return cur.Str.Join(), value(v), nil }
}

var errInvalid = errors.New("not an integer")

// TestModifyBatchOneKeyFails: in a batch of writes through one coordinator,
// one key's trouble (a peer of its own that refuses, stalls or is slow; its
// function's validation error; its quorum out of reach) changes that key's
// outcome only: every other key's result, and the replicas holding its
// write, are those of the same batch without the trouble.
func TestModifyBatchOneKeyFails(t *testing.T) {
	type outcome struct {
		data    []string
		err     bool
		holders []string // owners whose replica holds the write
	}
	for _, tt := range []struct {
		name  string
		nodes int
		// fault makes the first key fail (its owner pl[1] down, or its function).
		fault   func(tc *testCluster, pl []string, w *BatchWrite)
		wantErr bool // the first key's write fails
		// shared: the other keys may have the first key's failing owner too
		// (their messages to it fail with the first key's; each takes a spare).
		shared bool
	}{
		{"peer refuses", 6, func(tc *testCluster, pl []string, _ *BatchWrite) { tc.net.Crash(pl[1]) }, false, false},
		{"peer resets", 6, func(tc *testCluster, pl []string, _ *BatchWrite) { tc.net.Reset(pl[1], true) }, false, false},
		{"peer stalls", 6, func(tc *testCluster, pl []string, _ *BatchWrite) { tc.net.Slow(pl[1], -1) }, false, false},
		{"shared peer refuses", 6, func(tc *testCluster, pl []string, _ *BatchWrite) { tc.net.Crash(pl[1]) }, false, true},
		{"shared peer stalls", 6, func(tc *testCluster, pl []string, _ *BatchWrite) { tc.net.Slow(pl[1], -1) }, false, true},
		{"fn fails", 6, func(_ *testCluster, _ []string, w *BatchWrite) {
			w.Fn = func(record.Record) (vclock.Clock, vclock.Value, error) { return nil, vclock.Value{}, errInvalid }
		}, true, false},
		{"no quorum", 3, func(tc *testCluster, pl []string, w *BatchWrite) {
			tc.net.Crash(pl[1])
			w.Opt.W = 3
		}, true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			run := func(faulty bool) []outcome {
				var got []outcome
				synctest.Test(t, func(t *testing.T) {
					tc := newDetectCluster(t, tt.nodes, time.Hour)
					defer tc.Close()
					coord := tc.names[0]
					first := batchKeys(tc, coord, 1)[0]
					pl := tc.prefs(first)
					var others []string
					if tt.nodes == 3 || tt.shared {
						others = batchKeys(tc, coord, 5) // every key has every node
					} else {
						others = batchKeys(tc, coord, 5, pl[1])
					}
					keys := append([]string{first}, others...)
					var writes []BatchWrite
					for i, k := range keys {
						writes = append(writes, BatchWrite{Key: []byte(k), Fn: setTo(fmt.Sprint("v", i)), Opt: WriteOptions{ReadFirst: i%2 == 1}})
					}
					if tt.nodes == 3 && !faulty {
						writes[0].Opt.W = 3
					}
					if faulty {
						tt.fault(tc, pl, &writes[0])
					}
					res := tc.cos[coord].ModifyBatch(context.Background(), writes)
					time.Sleep(2 * time.Second) // stalled calls end (and keep their hints)
					for i, r := range res {
						o := outcome{data: data(r.Record), err: r.Err != nil}
						if tt.nodes != 3 || i > 0 { // with 3 nodes the first key's owner is down
							dot := dotOf(r.Record, coord+":1")
							for _, owner := range tc.prefs(keys[i])[:3] {
								h := false
								for _, n := range tc.names {
									if rec, ok := tc.hint(n, owner, keys[i]); ok && covers(rec, dot) {
										h = true
									}
								}
								if h || covers(tc.local(owner, keys[i]), dot) {
									o.holders = append(o.holders, owner)
								}
							}
						}
						got = append(got, o)
					}
					if faulty {
						if err := res[0].Err; (err != nil) != tt.wantErr {
							t.Errorf("the first key's write: %v, want an error %v", err, tt.wantErr)
						}
						var qe *QuorumError
						if tt.nodes == 3 && !errors.As(res[0].Err, &qe) {
							t.Errorf("the first key's write: %v, want a QuorumError", res[0].Err)
						}
						if tt.name == "fn fails" && !errors.Is(res[0].Err, errInvalid) {
							t.Errorf("the first key's write: %v, want its function's error", res[0].Err)
						}
					}
				})
				return got
			}
			want, got := run(false), run(true)
			for i := 1; i < len(want); i++ {
				if !slices.Equal(got[i].data, want[i].data) || got[i].err != want[i].err || !slices.Equal(got[i].holders, want[i].holders) {
					t.Errorf("key %d: %+v, without the first key's trouble %+v", i, got[i], want[i])
				}
				if got[i].err || len(got[i].holders) != 3 {
					t.Errorf("key %d: %+v, want written to its 3 owners", i, got[i])
				}
			}
			if !tt.wantErr && len(got[0].holders) != 3 {
				t.Errorf("the first key's write reached %v, want every owner (its failed one through a hint)", got[0].holders)
			}
		})
	}
}

// TestModifyBatchMatchesModify: a batch of writes to distinct keys leaves the
// same records on every node, and returns the same results, as Modify of each
// in turn (random clusters, coordinators, existing records, quorums, ReadFirst,
// functions that write, decide not to, or fail). The clock is fixed, so both
// runs hand out the same fresh counters.
func TestModifyBatchMatchesModify(t *testing.T) {
	for seed := range uint64(30) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			type state struct {
				res     []BatchResult
				records map[string]string // node/key -> encoded record
			}
			run := func(batch bool) state {
				var st state
				synctest.Test(t, func(t *testing.T) {
					rng := rand.New(rand.NewPCG(seed, 0xba7c))
					fixed := time.UnixMilli(1_700_000_000_000)
					nodes := 3 + rng.IntN(4)
					tc := newTestCluster(t, nodes, func(c *Config) { c.Now = func() time.Time { return fixed } })
					defer tc.Close()
					ctx := context.Background()
					coord := tc.names[rng.IntN(nodes)]
					nkeys := 1 + rng.IntN(20)
					keys := make([]string, nkeys)
					for i := range keys {
						keys[i] = fmt.Sprint("k", i)
						if rng.IntN(2) == 0 { // an existing record, written elsewhere
							if _, err := tc.cos[tc.names[rng.IntN(nodes)]].Modify(ctx, []byte(keys[i]), setTo("old"), WriteOptions{}); err != nil {
								t.Fatal(err)
							}
						}
					}
					synctest.Wait()
					var writes []BatchWrite
					for i, k := range keys {
						var fn ModifyFunc
						switch r := rng.IntN(6); {
						case r == 0:
							fn = func(record.Record) (vclock.Clock, vclock.Value, error) { return nil, vclock.Value{}, ErrNoWrite }
						case r == 1:
							fn = func(record.Record) (vclock.Clock, vclock.Value, error) { return nil, vclock.Value{}, errInvalid }
						case r == 2:
							fn = func(cur record.Record) (vclock.Clock, vclock.Value, error) {
								return cur.Str.Join(), vclock.Value{Tombstone: true, Timestamp: 2}, nil
							}
						default:
							fn = setTo(fmt.Sprint("v", i))
						}
						writes = append(writes, BatchWrite{Key: []byte(k), Fn: fn,
							Opt: WriteOptions{W: rng.IntN(4), ReadFirst: rng.IntN(2) == 0}})
					}
					if batch {
						st.res = tc.cos[coord].ModifyBatch(ctx, writes)
					} else {
						for _, w := range writes {
							res, err := tc.cos[coord].Modify(ctx, w.Key, w.Fn, w.Opt)
							st.res = append(st.res, BatchResult{WriteResult: res, Err: err})
						}
					}
					synctest.Wait()
					st.records = map[string]string{}
					for _, n := range tc.names {
						for _, k := range keys {
							st.records[n+"/"+k] = string(tc.local(n, k).AppendBinary(nil))
						}
					}
				})
				return st
			}
			one, batch := run(false), run(true)
			for i := range one.res {
				a, b := one.res[i], batch.res[i]
				if (a.Err == nil) != (b.Err == nil) || a.Err != nil && a.Err.Error() != b.Err.Error() ||
					!sameRecord(a.Record, b.Record) {
					t.Errorf("write %d: Modify %v %v, ModifyBatch %v %v", i, data(a.Record), a.Err, data(b.Record), b.Err)
				}
				if b.Err == nil && !b.Durable {
					t.Errorf("write %d: not durable", i)
				}
			}
			for k, v := range one.records {
				if batch.records[k] != v {
					t.Errorf("%s: records differ after Modify and ModifyBatch", k)
				}
			}
		})
	}
}

// TestModifyBatchRepeatedKey: a key written twice in a batch sees its first
// write, and both writes' results hold what they stored.
func TestModifyBatchRepeatedKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestCluster(t, 4, nil)
		defer tc.Close()
		coord := tc.names[0]
		var saw []string
		appendV := func(v string) ModifyFunc {
			return func(cur record.Record) (vclock.Clock, vclock.Value, error) {
				saw = append(saw, fmt.Sprint(data(cur)))
				return cur.Str.Join(), value(v), nil
			}
		}
		res := tc.cos[coord].ModifyBatch(context.Background(), []BatchWrite{
			{Key: []byte("k"), Fn: appendV("a")},
			{Key: []byte("j"), Fn: appendV("x")},
			{Key: []byte("k"), Fn: appendV("b"), Opt: WriteOptions{ReadFirst: true}},
		})
		for i, r := range res {
			if r.Err != nil {
				t.Fatalf("write %d: %v", i, r.Err)
			}
		}
		if want := []string{"[]", "[]", "[a]"}; !slices.Equal(saw, want) {
			t.Errorf("functions saw %v, want %v", saw, want)
		}
		if d := data(res[2].Record); !slices.Equal(d, []string{"b"}) {
			t.Errorf("second write of k stored %v", d)
		}
		synctest.Wait()
		for _, o := range tc.prefs("k")[:3] {
			if d := data(tc.local(o, "k")); !slices.Equal(d, []string{"b"}) {
				t.Errorf("owner %s holds %v", o, d)
			}
		}
	})
}

// TestModifyBatchLateAndSealed: a write whose own deadline passed is ErrLate,
// the others go on; a sealed coordinator refuses every write.
func TestModifyBatchLateAndSealed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestCluster(t, 4, nil)
		defer tc.Close()
		co := tc.cos[tc.names[0]]
		writes := []BatchWrite{
			{Key: []byte("a"), Fn: setTo("1"), Deadline: time.Now().Add(-time.Millisecond)},
			{Key: []byte("b"), Fn: setTo("2")},
		}
		res := co.ModifyBatch(context.Background(), writes)
		if !errors.Is(res[0].Err, ErrLate) || res[1].Err != nil {
			t.Fatalf("late write: %v; in-time write: %v", res[0].Err, res[1].Err)
		}
		co.Seal()
		for i, r := range co.ModifyBatch(context.Background(), writes[1:]) {
			if !errors.Is(r.Err, ErrSealed) {
				t.Errorf("sealed, write %d: %v", i, r.Err)
			}
		}
	})
}

// TestModifyBatchSingleNode: without a Cluster, ModifyBatch is Modify of each
// write on the local store, durable.
func TestModifyBatchSingleNode(t *testing.T) {
	co, _ := newCoordinator(t, 16, nil)
	res := co.ModifyBatch(context.Background(), []BatchWrite{
		{Key: []byte("a"), Fn: setTo("1")},
		{Key: []byte("a"), Fn: func(cur record.Record) (vclock.Clock, vclock.Value, error) {
			return cur.Str.Join(), value(data(cur)[0] + "2"), nil
		}},
		{Key: []byte("b"), Fn: func(record.Record) (vclock.Clock, vclock.Value, error) { return nil, vclock.Value{}, errInvalid }},
	})
	if res[0].Err != nil || res[1].Err != nil || !errors.Is(res[2].Err, errInvalid) {
		t.Fatalf("results %+v", res)
	}
	if d := data(res[1].Record); !slices.Equal(d, []string{"12"}) || !res[1].Durable {
		t.Fatalf("second write: %v durable=%v", d, res[1].Durable)
	}
	got, err := co.Get(context.Background(), []byte("a"), ReadOptions{})
	if err != nil || !slices.Equal(data(got), []string{"12"}) {
		t.Fatalf("a = %v, %v", data(got), err)
	}
}

// BenchmarkModifyBatch compares one ModifyBatch of 16 writes with 16 Modify
// calls, one after another and all at once, on a 3-node cluster over the
// in-memory peer network (no delay) with memstores: the cost of coordination
// itself, messages included.
func BenchmarkModifyBatch(b *testing.B) {
	const n = 16
	tc := newTestCluster(b, 3, nil)
	defer tc.Close()
	co := tc.cos[tc.names[0]]
	ctx := context.Background()
	writes := make([]BatchWrite, n)
	for i := range writes {
		writes[i] = BatchWrite{Key: fmt.Appendf(nil, "key%d", i), Fn: setTo("value")}
	}
	b.Run("batch", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, r := range co.ModifyBatch(ctx, writes) {
				if r.Err != nil {
					b.Fatal(r.Err)
				}
			}
		}
	})
	b.Run("sequential", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, w := range writes {
				if _, err := co.Modify(ctx, w.Key, w.Fn, w.Opt); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("concurrent", func(b *testing.B) {
		b.ReportAllocs()
		errs := make(chan error, n)
		for b.Loop() {
			for _, w := range writes {
				go func() {
					_, err := co.Modify(ctx, w.Key, w.Fn, w.Opt)
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

// TestWriteBatchSplits: RemotePeers' WriteBatch sends one request in a
// message of its own and a larger batch as MsgWriteBatch messages of at most
// maxBatchCount writes, each write getting its own outcome.
func TestWriteBatchSplits(t *testing.T) {
	for _, tt := range []struct {
		n    int
		want []string
	}{
		{1, []string{"write"}},
		{3, []string{"batch of 3"}},
		{maxBatchCount + 4, []string{fmt.Sprint("batch of ", maxBatchCount), "batch of 4"}},
	} {
		caller := &recordingCaller{release: make(chan struct{})}
		close(caller.release)
		reqs := make([]peer.WriteRequest, tt.n)
		for i := range reqs {
			key := fmt.Sprint("k", i)
			if i == tt.n-1 {
				key = "bad"
			}
			reqs[i] = peer.WriteRequest{Key: []byte(key), Record: record.String(vclock.Update(vclock.Set{}, nil, "n1:1", value(key), 1, 0))}
		}
		errs := RemotePeers(caller).(BatchWriter).WriteBatch(context.Background(), "n2", reqs)
		if !slices.Equal(caller.calls, tt.want) {
			t.Errorf("%d writes: messages %v, want %v", tt.n, caller.calls, tt.want)
		}
		for i, err := range errs {
			if (err != nil) != (i == tt.n-1) {
				t.Errorf("%d writes: write %d: %v", tt.n, i, err)
			}
		}
		if len(errs) != tt.n {
			t.Errorf("%d writes: %d outcomes", tt.n, len(errs))
		}
	}
}

package resp

import (
	"time"

	"github.com/dynakv/dynakv/proxy"
)

// Batched pipelines (issue 19, S9, S10). In a cluster (Config.Cluster set,
// Config.NoBatch not), a connection's pipelined batch that holds a run of two
// or more consecutive batchable commands (plain SET key value, GET key and
// single-key DEL or UNLINK, each an op proxy.Batchable accepts: default quorum,
// not forwarded) runs that run's ops with one proxy.DoBatch (one local storage
// batch and one message per replica node for the writes, one read pass for
// the reads) when runBatch reaches its first command. Then each command of the
// run executes as it always does, checks, handler, reply and counters, except
// that its one op's outcome is the one DoBatch gave (proxy.Session.Preset), so
// its reply, error text and statistics are byte for byte what running it alone
// gives. Commands outside a run execute as before, in order, and a run starts
// only once every command before it has completed, so a connection's commands
// keep their order. MGET in a cluster reads its keys through DoBatch too
// (mgetReader).
//
// What a run may not cross: a run holds only the three commands above, so it
// ends at any other command (QUIT, AUTH, MULTI, ...); a connection that has not
// authenticated, is inside MULTI or is closing never batches. The one
// difference from running alone: when the client stops reading in the middle
// of a run (its replies pass OutputBufferLimit and the write fails) the run's
// later commands have run all the same, as if the client had vanished just
// after the node executed them.

// runAhead is a run of a batch's commands whose ops DoBatch ran ahead:
// c.cmds.get(from+j) issues ops[j], whose outcome is out[j]. DoBatch took
// took, which each command's latency (commandstats, Observer) includes: what
// its client waited for it.
type runAhead struct {
	from, to int
	ops      []proxy.Op
	out      []proxy.BatchResult
	took     time.Duration
}

// batching reports whether pipelined runs and MGETs go through DoBatch.
func (s *Server) batching() bool { return s.cfg.Cluster != nil && !s.cfg.NoBatch }

// batchOp returns the one op a batchable command's handler issues, for the
// shapes that may join a batch (the handlers' ops: get, set with no option,
// del of one key), or false.
func batchOp(cmd *command, args [][]byte) (proxy.Op, bool) {
	switch {
	case cmd.name == "get" && len(args) == 2:
		return proxy.Op{Kind: proxy.OpGet, Key: args[1]}, true
	case cmd.name == "set" && len(args) == 3:
		return proxy.Op{Kind: proxy.OpSet, Key: args[1], Value: args[2]}, true
	case (cmd.name == "del" || cmd.name == "unlink") && len(args) == 2:
		return proxy.Op{Kind: proxy.OpDelete, Key: args[1]}, true
	}
	return proxy.Op{}, false
}

// batchable returns the op of c.cmds' command i when it may join a run: a
// batchable shape that exec would run now (the connection authenticated, not
// in MULTI, not closing, the node not over its memory limit for a denyoom
// command) and that proxy.Batchable accepts, of a key another node holds too
// (proxy.SoleReplica: a key only this node holds gains nothing from a batch).
func (s *Server) batchable(c *client, i int) (proxy.Op, bool) {
	if !c.authed || c.inMulti || c.closing {
		return proxy.Op{}, false
	}
	args := c.cmds.get(i)
	if len(args) == 0 {
		return proxy.Op{}, false
	}
	cmd := s.cmds.lookup(args[0])
	if cmd == nil {
		return proxy.Op{}, false
	}
	op, ok := batchOp(cmd, args)
	if !ok || cmd.denyOOM && s.cfg.OOM != nil && s.cfg.OOM() || !s.px.Batchable(op) || s.px.SoleReplica(op.Key) {
		return proxy.Op{}, false
	}
	return op, true
}

// maxRun bounds the commands one DoBatch runs ahead: a longer run (a bulk
// load, a pipeline of a thousand GETs) is run in pieces, one after another, so
// that one replica message carries at most this many keys (a larger one takes
// longer than a replica's timeout on a busy node, and every key of it fails
// over at once), and the values read ahead of their replies stay few.
const maxRun = 64

// runAheadFrom runs ahead the run of batchable commands that starts at c.cmds'
// command i (maxRun of them at most), if there is one of two or more, into r;
// otherwise r is left empty at i.
func (s *Server) runAheadFrom(c *client, i int, r *runAhead) {
	r.from, r.to, r.ops, r.out = i, i, r.ops[:0], nil
	for j := i; j < c.cmds.len() && j < i+maxRun; j++ {
		op, ok := s.batchable(c, j)
		if !ok {
			break
		}
		r.ops = append(r.ops, op)
	}
	if len(r.ops) < 2 {
		r.ops = r.ops[:0]
		return
	}
	b := s.px.NewBatch()
	for _, op := range r.ops {
		b.Add(owned(op)) // Batchable already: added
	}
	r.to = i + len(r.ops)
	start := time.Now()
	r.out = s.px.DoBatch(s.ctx, b)
	r.took = time.Since(start)
}

// mgetChunk bounds the keys one MGET reads with one DoBatch: the values read
// but not yet in the reply are at most this many (spill bounds the rest), and
// so are the keys of one replica message (see maxRun).
const mgetChunk = 32

// mgetReader reads MGET's keys in order: each alone (readOp: inline on the loop
// or with Do) on a single node or on the loop, in chunks through DoBatch in a
// cluster, a key that may not join a batch
// (forwarded) alone with Do when its turn comes. The reply is the same either
// way; when a key fails (MGET then answers its error, or ends the connection
// once part of the reply left), the keys after it in its chunk were read all
// the same, and counted in keyspace hits and misses.
type mgetReader struct {
	s     *Server
	c     *client
	keys  [][]byte
	from  int                 // got[j] is keys[from+j]'s outcome
	got   []proxy.BatchResult // nil entry when alone[j]
	alone []bool
}

// get returns key i's GET outcome; i grows by one from 0.
func (r *mgetReader) get(i int) (proxy.Result, error) {
	op := proxy.Op{Kind: proxy.OpGet, Key: r.keys[i]}
	if r.c.try || !r.s.batching() {
		// On the loop (try mode) a key is read inline or hands MGET off
		// (readOp); DoBatch waits, so it runs on the handoff only.
		return r.s.readOp(r.c, op)
	}
	if i >= r.from+len(r.got) {
		r.fetch(i)
	}
	if j := i - r.from; !r.alone[j] {
		return r.got[j].Result, r.got[j].Err
	}
	return r.s.px.Do(r.s.ctx, owned(op))
}

// fetch reads keys i.. (mgetChunk of them at most) with one DoBatch.
func (r *mgetReader) fetch(i int) {
	end := min(i+mgetChunk, len(r.keys))
	b := r.s.px.NewBatch()
	idx := make([]int, 0, end-i) // the batch's ops are keys[idx[...]]
	r.from, r.alone = i, make([]bool, end-i)
	for k := i; k < end; k++ {
		// A key this node holds alone is read alone: Do serves it locally.
		if r.s.px.SoleReplica(r.keys[k]) {
			r.alone[k-i] = true
			continue
		}
		if _, ok := b.Add(owned(proxy.Op{Kind: proxy.OpGet, Key: r.keys[k]})); ok {
			idx = append(idx, k-i)
		} else {
			r.alone[k-i] = true
		}
	}
	r.got = make([]proxy.BatchResult, end-i)
	for j, res := range r.s.px.DoBatch(r.s.ctx, b) {
		r.got[idx[j]] = res
	}
}

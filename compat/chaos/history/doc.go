// Package history is the chaos harness's checker: it takes the record of every
// client operation of a run (invocation, completion, outcome, values and causal
// contexts), the converged record of every key read after the faults were healed,
// and decides whether dynakv kept the promises a Dynamo-style store makes. It is
// pure: no I/O, no clocks, no goroutines. Times are offsets from the start of the
// run measured by one monotonic clock in the harness.
//
// # What Dynamo promises, and what is checked
//
// Keys are split by how they are written, so each rule is as sharp as it can be:
// plain keys take SET (with or without a TTL), DEL, INCR and the memcached set,
// delete, cas and incr (no client context: the coordinator writes with the context
// it holds or read, last writer wins for GET); context keys take DGET, DPUT and
// DDEL. Counter keys take only increments (and a SET of 0 first). The checker does
// not need the split, but the harness keeps it. An acknowledged write the server
// said it did not make (DEL answering 0, memcached NOT_FOUND or EXISTS) is Noop
// and counts as no write at all.
//
// When a write takes effect. A write is applied by its coordinator at some moment
// between its invocation and, for an acknowledged write, its completion. A write that
// failed or timed out may have been applied at any moment after its invocation (a
// forwarded op can run after the front door gave up; a NOQUORUM write is stored on
// the replicas it reached), or never. Anti-entropy, read repair and hinted handoff
// only merge records (vclock.Sync); they never drop a value whose dot the other side
// has not seen superseded. A value therefore disappears only when a client write
// whose context covers its dot is applied.
//
// Rule 1, no acknowledged plain write is lost. An acknowledged SET or INCR that wrote
// value v is lost when v is not among the converged siblings of its key and no other
// write to the key could have superseded it. A write w could have superseded v only
// if w was applied after v (its coordinator's context must contain v's dot), so w
// cannot have done so exactly when w was acknowledged before v was invoked. Every
// other write to the key, acknowledged or not and of any kind, is a possible
// superseder. This is all Dynamo promises for plain writes: with last-writer-wins a
// concurrent SET may overwrite an acknowledged one, and an INCR that read a stale
// replica may write a smaller number over a larger one (increments are not atomic
// across replicas and the checker does not claim they are). INCR values are numbers
// other INCRs may also write, so for them the membership test is by value and is
// weaker than for SET, whose values are unique.
//
// Rule 2, no acknowledged context write is lost. An acknowledged DPUT of v with input
// context I returns context C; v's dot is (x, n) for its coordinator x, with
// I[x] < n <= C[x]. The client does not learn x, so the candidates are the actors a
// with C[a] > I[a]. v is lost when v is not among the converged siblings and no other
// write w (DPUT or DDEL, any outcome) has an input context J with J[a] > I[a] for a
// candidate a (a necessary condition for J to cover v's dot), and no plain write
// could have superseded it by the time rule of rule 1. This is sound (it never calls
// a legitimate supersession a loss); requiring J to descend C, which is sharper, is
// not: C also carries concurrent siblings the coordinator held that a later reader
// need not have seen.
//
// A write with a TTL (SET EX/PX, memcached exptime) whose expiry may have passed
// before the end of the run is exempt from rule 1: its value may vanish (rule 7
// checks what it hid).
//
// Rule 3, no context is forgotten. Every context a client was given (the result of an
// acknowledged DGET, DPUT or DDEL) names dots that were stored durably on some
// replica. Replicas only merge, so the converged context of the key must descend each
// of them. This holds while a key has at most vclock.MaxEntries actors (the
// harness never names more nodes than that in a run, joins included), since
// pruning is what could forget a counter, and until a purge: the
// harness runs a tombstone grace of seconds, and a purge drops a whole dead record,
// after which the key starts a fresh history. A purge needs the record all dead: a
// tombstone (a delete of any outcome, not Noop) or a value that may have expired.
// Once an acknowledged write of a live value without TTL was invoked after every
// such write could have been stamped and run (its stamp window, below, plus the
// lateness), the record holds a live value for good and is never purged again; so
// the key's purge horizon is that write's completion (0 when nothing ever made the
// record dead, forever when no such write exists). Contexts given by operations
// invoked before the horizon are exempt (counted as "contexts a purge may have
// dropped"); every later one must be descended. Keys that never see a delete
// (the harness deletes only on every other DPUT key) keep the strict rule.
//
// Rule 4, no sibling without concurrency. If values a and b are seen together as
// siblings (in any DGET reply or the converged record), b must not have been written
// with a context covering a's dot. The checker flags it only when it is certain:
// a was acknowledged with context C and input I, and b's input context J has
// J[a'] >= C[a'] for every candidate actor a' (so J covers (x, n) whatever x was).
//
// A front door that is not one of the key's N replicas forwards a DPUT to one that
// is. It must not run the DPUT again itself when the replica does not answer: the
// value would get two dots, and a later write whose context covers one of them
// would leave the other, so the old value would show up again next to its
// successor. dynakv answers such a DPUT "outcome unknown" instead (README,
// "Commands go to the key's replicas"), so rule 4 holds through any node.
//
// Rule 5, monotonic session reads. A session's DGET of a key must descend its
// previous DGET of the key. Dynamo does not promise this while faults are active or
// before replicas converge: a read quorum may come from fallbacks or from replicas a
// write in flight has not reached yet (read repair runs in the background), so a
// later read can miss what an earlier one saw. Those violations are counted and
// reported as stale reads, not failures. After convergence (every replica of every
// key equal, no hint pending) with no write in flight, every read returns the
// converged record, which descends everything ever stored, so a violation by a DGET
// invoked after convergence is a failure. A pair whose earlier read was invoked
// before the key's purge horizon (rule 3) is exempt: a purge may lie between them.
//
// Rule 6, replicas converge. Within the harness's deadline after healing, the LOCAL
// record of every key is equal (same context, same siblings) on every node of its
// preference list; CompareReplicas decides equality and the harness polls. The
// preference lists are the ones of the ring after the membership changes.
//
// # Plain reads: last writer wins, deletes and expiry included
//
// Plain GET and memcached get choose, among all siblings of the record, tombstones
// and expired values included, the one with the greatest (timestamp, dot), and
// answer "absent" when it is a tombstone or has expired. A delete and an expired
// value therefore hide every value with an older timestamp, as long as they (or
// something that superseded them) stay in the record; tombstones and expired values
// stay until a purge that every holder of the key agreed to, which cannot happen
// while an older copy exists. Rules 7 to 9 judge the plain reads made after the
// replicas converged (the harness reads every plain key through every member with
// both protocols); reads during the faults may legitimately be stale.
//
// When a write is stamped. A write's timestamp is fixed by its front node (the node
// the client sent it to) when it accepts the command, from its own clock; a
// request that reaches another node after its deadline (the nodes'
// --request-timeout) is refused, so every node that runs a write, the coordinator it
// is forwarded to included, runs it within the lateness L (History.Lateness: the
// request timeout plus a margin) of its acceptance. The checker works on one clock,
// the harness's: nodes share the machine's clock, except a node restarted by a
// clock-offset fault, whose clock runs Offset away from it from the fault's Start
// to its End. So the timestamp of a write o lies in its stamp window [lo, hi]:
//
//   - lo = o.Invoke + the smallest offset o's front node ran with during the window
//     (0 when none); the front node cannot have accepted o before it was sent.
//   - hi = the latest acceptance + the largest offset, where the latest acceptance
//     is o.Complete for an acknowledged or failed write (the front node answered,
//     so it had accepted it), and for a write whose outcome is unknown also
//     o.Complete, unless its front node was paused (SIGSTOP) at some moment of
//     [o.Invoke, o.Complete]: then the end of that pause plus L, since a stopped
//     node reads the command from its socket when it resumes. A killed node never
//     runs a command it had not read; a network partition never cuts a client from
//     its front node here.
//
// Rule 7, no overwritten value comes back. Let a plain read after convergence return
// the value v written by w (values of SET, memcached set and cas are unique, so v
// names w; a value nobody wrote is a phantom-value violation). An acknowledged
// write d (not Noop) surely overwrote w when lo(d) > hi(w) + L: then d's timestamp
// is later than w's, and w cannot have been run after d was applied (w ran within
// L of hi(w)), so w's coordinator cannot have had d's tombstone or value to
// supersede. From d's application on, the record holds d's sibling or a write x
// whose context covered it, and x was accepted no earlier than L before d was
// applied, so, unless x's front node ran with a negative offset, x's timestamp is
// later than w's too: v can never be the winner. The rule flags v when some d
// surely overwrote w and no write x that may have been applied after d (any write
// not acknowledged before d was invoked) can have a timestamp, at least
// max(x.Invoke, d.Invoke - L) + its smallest offset, not later than hi(w). It is
// reported as deleted-value-returned when a d is a DEL or memcached delete
// ("an acknowledged delete stays deleted unless a later write exists": w completed
// before d was invoked, with the lateness and the unknown outcomes made exact as
// above; w concurrent with d, or after it, is fine), as expired-overwrite-returned
// when a d carries a TTL that may have passed by the end of the run ("an expired
// overwrite never brings the older value back": whether or not its TTL has passed,
// no value written before it may be read), and as overwritten-value-returned
// otherwise. The checker counts the reads whose
// verdict only a clock offset left open.
//
// Clock offsets. Last writer wins is only as good as the clocks: a write through a
// node whose clock runs ahead may legitimately beat a later one, and a delete
// through a node whose clock runs behind may legitimately lose to an earlier write.
// Taking the known offset of the front node into the stamp window, as above, keeps
// rule 7 sound under the clock-offset fault without exempting whole keys: only the
// pairs the offset could reorder go unjudged.
//
// Rule 8, no expired value is read. A value written with a TTL t expires at the
// front node's clock reading at acceptance plus t, so a read invoked after
// hi(w) + t + L must not return it.
//
// Rule 9, counters. Today's INCR and memcached incr are read-modify-writes: the
// coordinator reads the key from R replicas, writes the number read plus one as a
// plain value with last writer wins, and two concurrent increments may both write
// the same number, so increments can be lost but never counted twice, and a value
// read is 0 (absent), a SET's number, or one an earlier increment wrote. Hence the
// k-th increment applied writes at most base + k, where base is the largest number
// a SET wrote. The final value n must be one some write can have written: an
// acknowledged increment that returned n, a SET of n, or an increment whose
// outcome is unknown, if n is at most base plus the number of increments invoked
// before it can have run (hi + L). In particular n is at most the number of
// attempted increments (plus base), and absent only if no increment was
// acknowledged (nothing deletes a counter key). And rule 7 applies: if every write
// that can have written n was surely overwritten by an acknowledged later one, it
// is an overwritten-value-returned violation. There is no lower bound beyond that:
// an increment that read a stale replica may legitimately write a smaller number
// with a later timestamp. With History.CRDTCounters (INCR as a PN-counter, the
// data-types design: concurrent increments all count) the rule is instead that
// the final value lies between the acknowledged and the attempted increments.
//
// Rule 10, writes do not wait for gossip. While the only faults are members killed
// (or being removed), Outage.Down, and at least MinAlive (W) members are up,
// connected and unpaused, every key's extended preference list has W live reachable
// nodes, so a request (read or write) through a live node must not fail for want of
// a quorum (NOQUORUM) once Failover (1 s) has passed since the outage began: the
// coordinator replaces a replica that refuses or does not answer by the next
// fallback at once. Other errors (an unknown outcome, a timeout) are not judged.
// A zone cut from the other zones by a partition (Outage.Cut) is such an outage
// for the requests through the other zones: its members are alive but, for the
// coordinators outside it, as unreachable as dead ones, and the others are W or
// more; requests through the cut zone's own nodes are not judged (their
// reachable nodes may be fewer than W).
//
// # Latency and availability
//
// Latencies reports, apart from the rules, how reads (GET, memcached get, DGET)
// and writes (everything else) completed and how long the acknowledged ones took
// (p50, p99, max, from an HDR histogram): over the whole load, outside every
// fault, and during each kind of zone-down fault, split by whether the client's
// front node was in the zone. It judges nothing: NOQUORUM through the other zones
// is rule 10's to judge, and the errors through the down zone are the clients of
// the lost data center (refused connections when it was killed).
package history

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
// plain keys take SET and INCR (no client context: the coordinator reads the
// record and writes with the context it read, last writer wins for GET); context
// keys take DGET, DPUT and DDEL. The checker does not need the split, but the
// harness keeps it.
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
// Rule 3, no context is forgotten. Every context a client was given (the result of an
// acknowledged DGET, DPUT or DDEL) names dots that were stored durably on some
// replica. Replicas only merge, so the converged context of the key must descend each
// of them. This holds while a key has at most vclock.MaxEntries actors (5 nodes
// here), since pruning is what could forget a counter, and while no tombstone is
// purged (the grace period is 24h).
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
// invoked after convergence is a failure.
//
// Rule 6, replicas converge. Within the harness's deadline after healing, the LOCAL
// record of every key is equal (same context, same siblings) on every node of its
// preference list; CompareReplicas decides equality and the harness polls.
package history

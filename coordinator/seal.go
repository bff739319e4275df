package coordinator

import (
	"errors"
)

// Sealing, for a node finishing a graceful leave. Tombstone purge asks only the
// ring's members what they hold (repair/purge.go), so a node that left the ring
// must hold nothing afterwards: a copy it kept (a write it coordinated as a
// non-owner, a replica write from a peer that had not heard of the leave, a
// hint) would be handed back to the owners later, after a purge may have deleted
// the tombstone that superseded it, and the deleted value would come back.
//
// So a leaving node seals its coordinator before it finishes: Seal waits for
// every local write in progress and from then on no local write happens, of any
// kind that brings data in (a write it coordinates, a replica or hinted write it
// serves, a hint it keeps, a local read repair; and anti-entropy, which writes
// the store directly, checks Sealed: repair.AAEConfig.Sealed); each is refused with ErrSealed,
// and a coordinator forwarding to this node runs the request elsewhere. Reads,
// hint delivery and the deletes of handoff and purge go on. The node then hands
// off what the last writes before the seal left, and leaves only once a round
// that began after the seal found nothing left (node/ and the simulation's
// leaveDone do so). A seal is not undone: a node that restarts starts unsealed,
// and a leave that is still in progress seals it again.

// ErrSealed is returned by a write refused because this node sealed its
// coordinator for the end of its leave: nothing was written here.
var ErrSealed = errors.New("coordinator: this node is leaving the ring and takes no more writes, nothing written")

// Seal stops every local write that brings data to this node, after waiting
// for those in progress; see the comment above ErrSealed. It is idempotent.
func (c *Coordinator) Seal() {
	c.sealMu.Lock()
	c.sealed = true
	c.sealMu.Unlock()
}

// Sealed reports whether Seal was called.
func (c *Coordinator) Sealed() bool {
	c.sealMu.RLock()
	defer c.sealMu.RUnlock()
	return c.sealed
}

// admitWrite lets a local write in unless the coordinator is sealed: the caller
// writes, then calls release. Seal waits for every admitted write to release.
// Admitted writes must not nest (a waiting Seal would block the inner one).
func (c *Coordinator) admitWrite() (release func(), err error) {
	c.sealMu.RLock()
	if c.sealed {
		c.sealMu.RUnlock()
		return nil, ErrSealed
	}
	return c.sealMu.RUnlock, nil
}

// tryAdmitWrite is admitWrite that never waits: when the seal's lock is taken
// (Seal holds it, or waits for it) it returns an error wrapping ErrWouldBlock,
// having taken nothing. Since it does not wait, an admission it gives may nest
// in another (a waiting Seal makes it refuse instead of deadlock).
func (c *Coordinator) tryAdmitWrite() (release func(), err error) {
	if !c.sealMu.TryRLock() {
		return nil, errSealBusy
	}
	if c.sealed {
		c.sealMu.RUnlock()
		return nil, ErrSealed
	}
	return c.sealMu.RUnlock, nil
}

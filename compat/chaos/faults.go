package main

import (
	"context"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/dynakv/dynakv/compat/chaos/history"
	"github.com/dynakv/dynakv/vclock"
)

// faultKinds are the faults the schedule draws from, each at least once per round.
var faultKinds = []string{
	"kill", "kill-rolling", "pause", "partition-majority", "partition-isolate", "partition-bridge",
	"net-slow", "clock-offset", "disk-full", "join", "leave", "remove",
}

// schedule injects faults one after another until d has passed or ctx ends: each
// round runs every kind once in a random order (roundOrder: with zones, the
// zone-down faults too, early in the round), holding each for 4-8 s and letting
// the cluster rest 2-4 s between them.
func (c *cluster) schedule(ctx context.Context, rng *rand.Rand, d time.Duration) error {
	end := time.Now().Add(d)
	for {
		for _, kind := range roundOrder(rng, c.s.zones > 0) {
			hold := time.Duration(4000+rng.Intn(4000)) * time.Millisecond
			rest := time.Duration(2000+rng.Intn(2000)) * time.Millisecond
			// A fault plus restarts takes hold and a few seconds more. The last
			// fault lasts until the end, so that healing follows a fault.
			if left := time.Until(end); left < 2*(hold+rest+3*time.Second) {
				return c.inject(ctx, rng, kind, max(left-3*time.Second, time.Second))
			}
			if err := c.inject(ctx, rng, kind, hold); err != nil {
				return err
			}
			if err := c.restartCrashed(); err != nil {
				return err
			}
			if err := sleepCtx(ctx, rest); err != nil {
				return err
			}
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// record notes a fault that ran from start to now on nodes.
func (c *cluster) record(kind, target string, start time.Duration, offset time.Duration, nodes ...*node) {
	f := history.Fault{Kind: kind, Target: target, Start: start, End: c.rec.now(), Offset: offset}
	for _, n := range nodes {
		f.Nodes = append(f.Nodes, n.name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.faults = append(c.faults, f)
}

func names(ns []*node) string {
	var out []string
	for _, n := range ns {
		out = append(out, n.name)
	}
	return strings.Join(out, ",")
}

func (c *cluster) hosts(ns []*node) []*host {
	var out []*host
	for _, n := range ns {
		out = append(out, n.h)
	}
	return out
}

// inject runs one fault for hold, then undoes it. Whatever happens, the fault is
// undone before inject returns (heal covers the rest at the end). Membership
// faults keep the ring between minMembers and maxMembers, and the run's node names
// (actors of the version vectors) at most vclock.MaxEntries, so no vector is ever
// pruned (rule 3 of package history assumes it): a join that cannot run becomes a
// leave, a leave or removal that cannot run a join, and a kill when neither can.
// With zones, a leave or removal never takes a zone's last member.
func (c *cluster) inject(ctx context.Context, rng *rand.Rand, kind string, hold time.Duration) error {
	members := c.memberList()
	m := len(members)
	zoned := c.s.zones > 0
	canJoin := m < maxMembers && c.freeHosts() > 0 && c.started() < vclock.MaxEntries
	canShrink := m > minMembers && (!zoned || shrinkable(members, members) != nil)
	switch {
	case kind == "join" && !canJoin && canShrink:
		kind = "leave"
	case (kind == "leave" || kind == "remove") && !canShrink && canJoin:
		kind = "join"
	case (kind == "join" && !canJoin) || ((kind == "leave" || kind == "remove") && !canShrink):
		kind = "kill"
	}
	perm := rng.Perm(m)
	shuffled := make([]*node, m)
	for i, p := range perm {
		shuffled[i] = members[p]
	}
	if zoned && (kind == "leave" || kind == "remove") {
		i := slices.Index(shuffled, shrinkable(shuffled, members))
		shuffled[0], shuffled[i] = shuffled[i], shuffled[0]
	}
	victim := shuffled[0]
	start := c.rec.now()
	var target string
	var offset time.Duration
	var acted []*node
	var err error
	switch kind {
	case "kill":
		target, acted = victim.name, []*node{victim}
		c.logf("fault %-18s kill -9 %s for %v", kind, target, hold)
		if err = victim.kill(); err == nil {
			end := c.beginOutage(m-1, victim)
			_ = sleepCtx(ctx, hold)
			end()
			err = victim.start()
		}
	case "kill-rolling":
		// Two members down at once, then the first back while the second stays down
		// past the tombstone grace: writes go to fallbacks and to front nodes that
		// are no owners, and purges run while a holder of the key is away.
		v2 := shuffled[1]
		target, acted = victim.name+","+v2.name, []*node{victim, v2}
		last := c.s.grace + 2*c.s.aae + time.Second
		c.logf("fault %-18s kill -9 %s, %v later %s; restart %s %v later and %s %v after that", kind, victim.name, hold/3, v2.name, victim.name, hold/3, v2.name, last)
		if err = victim.kill(); err == nil {
			end := c.beginOutage(m-1, victim)
			_ = sleepCtx(ctx, hold/3)
			end()
			if err = v2.kill(); err == nil {
				end = c.beginOutage(m-2, victim, v2)
				_ = sleepCtx(ctx, hold/3)
				end()
				if err = victim.start(); err == nil {
					end = c.beginOutage(m-1, v2)
					_ = sleepCtx(ctx, last)
					end()
				}
			}
		}
		if serr := startStopped(acted); err == nil {
			err = serr
		}
	case "join":
		// A new node joins while a member is down, and takes over some of its
		// partitions; the member comes back after the tombstone grace, still holding
		// copies of partitions it no longer owns.
		wait := max(hold, c.s.grace+2*c.s.aae+time.Second)
		acted = []*node{victim}
		c.logf("fault %-18s kill -9 %s, a new node joins, restart %s after %v", kind, victim.name, victim.name, wait)
		if err = victim.kill(); err == nil {
			end := c.beginOutage(m-1, victim)
			var n *node
			if n, err = c.join(); err == nil {
				target = n.name + " joins (" + victim.name + " down)"
				c.logf("  %s joined", n.name)
				_ = sleepCtx(ctx, wait)
			}
			end()
			if serr := victim.start(); err == nil {
				err = serr
			}
		}
	case "leave":
		target, acted = victim.name, []*node{victim}
		unfinished := false
		c.logf("fault %-18s %s leaves gracefully", kind, victim.name)
		c.retire(victim) // no more client traffic; it is no ring member once it leaves
		began := time.Now()
		if err = c.adminCmd(victim, "leave"); err == nil {
			deadline := began.Add(max(hold, 30*time.Second))
			state := ""
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if state, _ = memberState(victim, victim.name); state == "removed" || state == "" {
					break
				}
				_ = sleepCtx(ctx, 500*time.Millisecond)
			}
			unfinished = state != "removed" && state != ""
			if unfinished {
				c.logf("  %s has not finished its leave (state %q); stopping it and removing it from the ring", victim.name, state)
				target += " (unfinished, removed)"
			} else {
				c.logf("  %s handed its partitions off and left the ring", victim.name)
			}
			_ = sleepCtx(ctx, hold-time.Since(began))
		}
		if serr := victim.stop(); err == nil {
			err = serr
		}
		// A leave that did not finish leaves a dead member that still owns
		// partitions: the hints kept for it and the handoffs to it wait for
		// it forever. An operator who gives up on the leave removes it, and so
		// does the harness (the other replicas hold its data).
		if unfinished && err == nil {
			err = c.adminCmd(shuffled[1], "remove", victim.name)
		}
		c.retire(victim)
	case "remove":
		target, acted = victim.name, []*node{victim}
		c.logf("fault %-18s kill -9 %s and remove it from the ring after %v", kind, victim.name, hold/2)
		if err = victim.kill(); err == nil {
			end := c.beginOutage(m-1, victim)
			_ = sleepCtx(ctx, hold/2)
			err = c.adminCmd(shuffled[1], "remove", victim.name)
			end()
			c.retire(victim)
			_ = sleepCtx(ctx, hold/2)
		}
	case "pause":
		target, acted = victim.name, []*node{victim}
		c.logf("fault %-18s SIGSTOP %s for %v", kind, target, hold)
		victim.signal(syscall.SIGSTOP)
		_ = sleepCtx(ctx, hold)
		victim.signal(syscall.SIGCONT)
	case "partition-majority", "partition-isolate", "partition-bridge":
		var groups [][]*node
		zgroups, zones := byZone(members)
		switch {
		case kind == "partition-bridge" && zoned && len(zones) >= 3:
			// The WAN link between two halves of the zones is down; one zone,
			// the bridge, still sees both.
			zperm := rng.Perm(len(zones))
			others := zperm[1:]
			var sides [2][]*node
			for i, zi := range others {
				side := min(1, 2*i/len(others))
				sides[side] = append(sides[side], zgroups[zones[zi]]...)
			}
			groups = [][]*node{sides[0], sides[1]}
			victim = zgroups[zones[zperm[0]]][0]
		case kind == "partition-majority":
			groups = [][]*node{shuffled[:m/2+1], shuffled[m/2+1:]}
		case kind == "partition-isolate":
			groups = [][]*node{shuffled[:1], shuffled[1:]}
		default: // shuffled[0] sees both sides, which do not see each other
			half := 1 + (m-1)/2
			groups = [][]*node{shuffled[1:half], shuffled[half:]}
		}
		var parts []string
		var hostGroups [][]*host
		for _, g := range groups {
			parts = append(parts, names(g))
			hostGroups = append(hostGroups, c.hosts(g))
		}
		target = strings.Join(parts, " | ")
		switch {
		case kind == "partition-bridge" && zoned && len(zones) >= 3:
			target += " (bridge zone " + victim.h.zone + ")"
		case kind == "partition-bridge":
			target += " (bridge " + victim.name + ")"
		}
		c.logf("fault %-18s %s for %v", kind, target, hold)
		if err = c.nw.partition(hostGroups...); err == nil {
			_ = sleepCtx(ctx, hold)
		}
		if herr := c.nw.heal(); err == nil {
			err = herr
		}
	case faultZoneKill, faultZonePartition:
		groups, zones := byZone(members)
		z := zones[rng.Intn(len(zones))]
		down := groups[z]
		rest := slices.DeleteFunc(slices.Clone(members), func(n *node) bool { return n.h.zone == z })
		target, acted = fmt.Sprintf("%s (%s)", z, names(down)), down
		if kind == faultZoneKill {
			c.logf("fault %-18s kill -9 every node of zone %s at once, restart them after %v", kind, target, hold)
			if err = killAll(down); err == nil {
				end := c.beginOutage(len(rest), down...)
				_ = sleepCtx(ctx, hold)
				end()
			}
			if serr := startStopped(down); err == nil {
				err = serr
			}
		} else {
			c.logf("fault %-18s cut zone %s from %s for %v", kind, target, names(rest), hold)
			if err = c.nw.partition(c.hosts(down), c.hosts(rest)); err == nil {
				end := c.beginCut(len(rest), down...)
				_ = sleepCtx(ctx, hold)
				end()
			}
			if herr := c.nw.heal(); err == nil {
				err = herr
			}
		}
	case "net-slow":
		target = "all internode links"
		f := linkFaults{Delay: 10 * time.Millisecond, Jitter: 60 * time.Millisecond,
			Stall: 0.05, StallFor: 400 * time.Millisecond, Reset: 0.01}
		c.logf("fault %-18s %s: delay %v+%v, %.0f%% stalls of %v, %.0f%% resets, for %v", kind, target,
			f.Delay, f.Jitter, f.Stall*100, f.StallFor, f.Reset*100, hold)
		for _, p := range c.proxies {
			p.set(f)
		}
		_ = sleepCtx(ctx, hold)
		for _, p := range c.proxies {
			p.set(linkFaults{})
		}
	case "clock-offset":
		off := time.Duration(60+rng.Intn(120)) * time.Second
		if rng.Intn(2) == 0 {
			off = -off
		}
		target, offset, acted = fmt.Sprintf("%s %+v", victim.name, off), off, []*node{victim}
		c.logf("fault %-18s restart %s with its clock %+v off for %v", kind, victim.name, off, hold)
		victim.offset = off
		if err = victim.stop(); err == nil {
			if err = victim.start(); err == nil {
				_ = sleepCtx(ctx, hold)
				victim.offset = 0
				if err = victim.stop(); err == nil {
					err = victim.start()
				}
			}
		}
		victim.offset = 0
	case "disk-full":
		// Pebble preallocates its WAL, so a running node rarely writes into a
		// full disk within seconds; what a full disk surely hits is a restart (WAL
		// replay, a new WAL, the manifest). So: fill the disk, kill -9 the node,
		// try to start it, and report what it did.
		target, acted = victim.name, []*node{victim}
		c.logf("fault %-18s fill %s's data disk, kill -9 and restart it, for %v", kind, target, hold)
		if err = victim.fillDisk(0); err == nil {
			if err = victim.kill(); err == nil {
				began := time.Now()
				if serr := victim.start(); serr != nil {
					c.logf("  %s did not start on a full disk: %v\n%s", victim.name, serr, indent(victim.tailLog(3)))
					c.mu.Lock()
					c.diskFullExits = append(c.diskFullExits, fmt.Sprintf("%s: did not start", victim.name))
					c.mu.Unlock()
					_ = victim.kill()
				} else {
					c.logf("  %s started on a full disk", victim.name)
				}
				_ = sleepCtx(ctx, hold-time.Since(began))
			}
		}
		if ferr := victim.freeDisk(); err == nil {
			err = ferr
		}
		if err == nil && !victim.running() {
			err = victim.start()
		}
	default:
		return fmt.Errorf("unknown fault %q", kind)
	}
	c.record(kind, target, start, offset, acted...)
	if err != nil {
		return fmt.Errorf("fault %s on %s: %w", kind, target, err)
	}
	return ctx.Err()
}

// startStopped starts every one of ns that is not running; it returns the first
// error.
func startStopped(ns []*node) error {
	var first error
	for _, n := range ns {
		if !n.running() {
			if err := n.start(); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}

// killAll sends SIGKILL to every one of ns before it waits for any, so they die
// together.
func killAll(ns []*node) error {
	for _, n := range ns {
		n.signal(syscall.SIGCONT)
		n.signal(syscall.SIGKILL)
	}
	var first error
	for _, n := range ns {
		if err := n.wait(15 * time.Second); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func indent(s string) string { return "    " + strings.ReplaceAll(s, "\n", "\n    ") }

// restartCrashed restarts members that exited on their own, and records it.
func (c *cluster) restartCrashed() error {
	for _, n := range c.memberList() {
		if n.running() {
			continue
		}
		c.logf("CRASH: %s exited on its own (%s):\n%s", n.name, n.exitStatus(), indent(n.tailLog(20)))
		c.mu.Lock()
		c.crashes = append(c.crashes, fmt.Sprintf("%s at %v: %s", n.name, c.rec.now().Round(time.Millisecond), n.exitStatus()))
		c.mu.Unlock()
		if err := n.start(); err != nil {
			return err
		}
	}
	return nil
}

// heal undoes every fault: links, proxies, paused and dead processes, full disks,
// skewed clocks.
func (c *cluster) heal() error {
	if err := c.nw.heal(); err != nil {
		return err
	}
	for _, p := range c.proxies {
		p.set(linkFaults{})
	}
	for _, n := range c.memberList() {
		n.signal(syscall.SIGCONT)
		if err := n.freeDisk(); err != nil {
			return err
		}
	}
	if err := c.restartCrashed(); err != nil {
		return err
	}
	for _, n := range c.memberList() {
		if n.offset != 0 {
			n.offset = 0
			if err := n.stop(); err != nil {
				return err
			}
			if err := n.start(); err != nil {
				return err
			}
		}
	}
	return nil
}

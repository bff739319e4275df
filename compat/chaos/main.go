// Command chaos runs dynakv under faults, Jepsen style, and checks the history:
// five `dynakv server` processes, each in its own Linux network namespace joined by
// veth pairs to a bridge, and a spare namespace for nodes that join; clients in the
// root namespace doing, through every member, RESP sessions (go-redis: SET with and
// without a short TTL, GET, INCR, DEL and DGET/DPUT/DDEL) and memcached sessions
// (gomemcache: set with and without an exptime, get, delete, gets then cas, incr).
// The nodes run with a tombstone grace of seconds, so purges happen during the run.
// The fault schedule has kill -9 and restart (one node, or two overlapping),
// SIGSTOP/SIGCONT, partitions (majority/minority, one node isolated, a bridge node
// between two halves) with iptables, delay/stalls/resets on internode traffic
// through a fault-injecting TCP proxy (the kernel has no netem), a node restarted
// with its clock skewed, a node whose tmpfs data disk is full, and membership
// changes: a node joins (while a member is down), a member leaves gracefully (its
// process stops once its handoff is done), a member is killed and removed. Then it
// heals everything, waits for every replica of every key to be equal on the current
// preference lists and no hint to be pending (at most 60 s), reads every plain key
// through every member with both protocols, and checks the history with package
// history, which also reports the outcomes and p50/p99 latency of reads and writes.
//
// With --zones K the hosts are dealt round-robin into zones z1..zK (six nodes and
// a spare by default, so two a zone) and every node runs with its host's --zone; the
// internode transport between zones crosses a simulated WAN (the proxy delays each
// connection by a one-way latency drawn from 20-50 ms, none inside a zone; gossip
// is not proxied); the schedule adds two zone-down faults to every round, early
// (every node of a zone killed with -9 at once and restarted after the hold, or
// the zone cut from the others with iptables, both judged by rule 10 for the
// requests through the other zones), a partition-bridge cuts two zones apart with
// a third seeing both, and a leave or removal never takes a zone's last member.
// Clients stay in the root namespace and reach every node directly: each client
// is in the zone of the node it talks to.
//
// It needs root; without root or network namespaces it says why and exits 0 (a
// skip). Every namespace, link, mount and process it creates carries the prefix
// "dkc<pid>" and is removed at the end, on failure and on interrupt; leftovers of
// earlier runs whose harness is gone are removed at start.
//
//	go build -o bin/dynakv-chaos ./compat/chaos && bin/dynakv-chaos --duration 2m
//	bin/dynakv-chaos --duration 2m --zones 3 --out bin/chaos-zones
//
// It writes history.json (the input of the checker) and summary.json (the
// verdict's figures, latency windows included) under --out.
//
// The exit status is 1 when the checker finds a violation, replicas do not converge
// or a node crashed on its own, 2 when the harness itself failed.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dynakv/dynakv/compat/chaos/history"
)

// settings are the harness's flags.
type settings struct {
	duration       time.Duration
	seed           int64
	bin            string
	out            string
	nodes, spare   int
	zones          int
	sessions       int
	rate           int
	convergeMax    time.Duration
	grace, aae     time.Duration
	requestTimeout time.Duration
}

func main() {
	var s settings
	flag.DurationVar(&s.duration, "duration", 5*time.Minute, "length of the load and fault schedule")
	flag.Int64Var(&s.seed, "seed", 0, "seed of the fault schedule and the workload (0: from the clock)")
	flag.StringVar(&s.bin, "bin", "bin/dynakv", "the dynakv binary")
	flag.StringVar(&s.out, "out", "bin/chaos", "directory for the history JSON and the node logs")
	flag.IntVar(&s.nodes, "nodes", 5, "nodes in the ring at start")
	flag.IntVar(&s.spare, "spare", 1, "spare hosts for nodes that join")
	flag.IntVar(&s.zones, "zones", 0, "spread the hosts round-robin over this many zones (--zone z1..zK), with a simulated WAN between zones and zone-down faults; 0: no zones. With zones, --nodes defaults to two a zone (at most 6)")
	flag.DurationVar(&s.grace, "tombstone-grace", 3*time.Second, "the nodes' --tombstone-grace: short, so purges run during the load")
	flag.DurationVar(&s.aae, "aae-interval", 2*time.Second, "the nodes' --aae-interval")
	flag.DurationVar(&s.requestTimeout, "request-timeout", time.Second, "the nodes' --request-timeout")
	flag.IntVar(&s.sessions, "sessions", 10, "concurrent client sessions")
	flag.IntVar(&s.rate, "rate", 25, "steps per second per session")
	flag.DurationVar(&s.convergeMax, "converge-timeout", 60*time.Second, "how long replicas may take to converge after healing")
	flag.Parse()
	nodesSet := false
	flag.Visit(func(f *flag.Flag) { nodesSet = nodesSet || f.Name == "nodes" })
	if s.zones > 0 && !nodesSet {
		s.nodes = max(minMembers, min(2*s.zones, maxMembers-s.spare))
	}
	if s.zones < 0 || s.zones > s.nodes {
		fmt.Fprintln(os.Stderr, "chaos: --zones must be between 0 and --nodes")
		os.Exit(2)
	}
	if s.nodes < minMembers || s.nodes+s.spare > maxMembers || s.spare < 0 {
		fmt.Fprintf(os.Stderr, "chaos: --nodes must be at least %d and --nodes plus --spare at most %d\n", minMembers, maxMembers)
		os.Exit(2)
	}
	if s.seed == 0 {
		s.seed = time.Now().UnixNano() % 1_000_000_000
	}
	redis.SetLogger(quietLogger{})
	if why := preflight(); why != "" {
		fmt.Println("chaos: SKIP:", why)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	code, err := runChaos(ctx, s)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
	}
	stop()
	os.Exit(code)
}

// quietLogger drops go-redis's own log lines (dial failures while a node is down
// are expected; every operation's error is in the history).
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func logf(format string, args ...any) {
	fmt.Printf("%s %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// runChaos sets up, runs, checks and tears down; it returns the exit status.
func runChaos(ctx context.Context, s settings) (int, error) {
	bin, err := filepath.Abs(s.bin)
	if err != nil {
		return 2, err
	}
	if _, err := os.Stat(bin); err != nil {
		return 2, fmt.Errorf("dynakv binary: %w (make build)", err)
	}
	if err := os.MkdirAll(s.out, 0o755); err != nil {
		return 2, err
	}
	cleanLeftovers(logf)
	prefix := "dkc" + strconv.Itoa(os.Getpid())
	work, err := os.MkdirTemp("", prefix+"-")
	if err != nil {
		return 2, err
	}
	defer os.RemoveAll(work)
	logf("chaos: seed %d, duration %v, %d nodes (+%d spare), %d zones, %d sessions, tombstone grace %v, prefix %s", s.seed, s.duration, s.nodes, s.spare, s.zones, s.sessions, s.grace, prefix)

	nw, err := newNetwork(prefix, s.nodes+s.spare)
	if err != nil {
		return 2, fmt.Errorf("network: %w", err)
	}
	if s.zones > 0 {
		assignZones(nw.hosts, s.zones)
		logf("zones (round-robin over the hosts, WAN %v-%v one way between zones): %s", wanDelayMin, wanDelayMax, zoneLayout(nw.hosts))
	}
	defer func() {
		nw.close()
		logf("removed namespaces, links and bridge of %s", prefix)
	}()
	c := &cluster{nw: nw, rec: &recorder{}, logf: logf, s: s, bin: bin, gens: map[int]int{}}
	defer func() {
		for _, p := range c.proxies {
			p.close()
		}
		for _, n := range c.nodes {
			_ = n.kill()
			if data, err := os.ReadFile(n.logPath); err == nil {
				_ = os.WriteFile(filepath.Join(s.out, n.name+".log"), data, 0o644)
			}
		}
		for _, h := range nw.hosts {
			h.unmountDisk()
		}
	}()
	c.rec.start = time.Now()
	if err := c.setup(work); err != nil {
		return 2, err
	}

	keys := newKeyspace(30, 10, 30, 40, 40, 10)
	if err := initCounters(c.memberList(), keys, c.rec); err != nil {
		return 2, err
	}
	rng := rand.New(rand.NewSource(s.seed))
	var sessions []*session
	for i := range s.sessions {
		sessions = append(sessions, newSession(i+1, s.seed+int64(i)+1, nw.hosts, c.memberList, keys, c.rec))
	}
	defer func() {
		for _, ss := range sessions {
			ss.close()
		}
	}()

	stopLoad := make(chan struct{})
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		runSessions(sessions, stopLoad, int(s.duration.Seconds()+1)*s.rate, s.rate)
	}()
	schedErr := c.schedule(ctx, rng, s.duration)
	close(stopLoad)
	<-loadDone
	if schedErr != nil {
		return 2, schedErr
	}
	logf("load stopped after %d operations; healing", len(c.rec.ops))
	if err := c.heal(); err != nil {
		return 2, fmt.Errorf("heal: %w", err)
	}
	healed := c.rec.now()
	preflists := map[string][]string{}
	final, converged, divergent := c.awaitConvergence(ctx, keys.all(), s.convergeMax, preflists)
	if ctx.Err() != nil {
		return 2, ctx.Err()
	}
	finalAt := c.rec.now() // an upper bound on when the final records were read
	var convergedAt time.Duration
	if converged {
		convergedAt = c.rec.now()
		logf("converged %.1fs after healing, %d members %s", (convergedAt - healed).Seconds(), len(c.memberList()), names(c.memberList()))
		finalReads(sessions)
		finalPlainReads(c.memberList(), keys, c.rec)
	} else {
		logf("NOT CONVERGED within %v of healing:\n%s", s.convergeMax, indent(strings.Join(divergent, "\n")))
	}

	h := &history.History{Seed: s.seed, Ops: c.rec.ops, Faults: c.faults, Healed: healed, Converged: convergedAt, FinalAt: finalAt,
		Final: final, Preflists: preflists, Lateness: s.requestTimeout + time.Second, Outages: c.outages, Zones: c.zones()}
	rep := history.Check(h)
	path := filepath.Join(s.out, "history.json")
	if data, err := json.Marshal(h); err != nil {
		return 2, err
	} else if err := os.WriteFile(path, data, 0o644); err != nil {
		return 2, err
	}
	if err := writeSummary(filepath.Join(s.out, "summary.json"), s, h, rep, converged); err != nil {
		return 2, err
	}
	fmt.Printf("\n== chaos verdict (seed %d, duration %v)\n%s", s.seed, s.duration, rep.Summary())
	if converged {
		fmt.Printf("converged after healing: %.1fs (limit %v), hints_pending 0 on every node\n", (convergedAt - healed).Seconds(), s.convergeMax)
	} else {
		fmt.Printf("converged after healing: NO, %d keys still differ after %v\n", len(divergent), s.convergeMax)
	}
	fmt.Printf("node exits while a disk was full: %d %v\n", len(c.diskFullExits), c.diskFullExits)
	fmt.Printf("crashes no fault caused: %d %v\n", len(c.crashes), c.crashes)
	fmt.Printf("history: %s (node logs beside it)\n", path)
	printViolatingKeys(h, rep, 3)
	if rep.Failed() || !converged || len(c.crashes) > 0 {
		fmt.Println("chaos: FAIL")
		return 1, nil
	}
	fmt.Println("chaos: PASS")
	return 0, nil
}

// setup mounts the data disks, starts the proxies and the first s.nodes nodes, and
// forms the cluster; the other hosts are free for nodes that join.
func (c *cluster) setup(work string) error {
	for _, h := range c.nw.hosts {
		if err := h.mountDisk(filepath.Join(work, fmt.Sprintf("%sd%d", c.nw.prefix, h.idx)), 256<<20); err != nil {
			return fmt.Errorf("host %d data disk: %w", h.idx, err)
		}
	}
	// Internode transport from i to j goes through a proxy: i's connections to
	// j's cluster port are redirected (DNAT) to it.
	for _, from := range c.nw.hosts {
		for _, to := range c.nw.hosts {
			if from == to {
				continue
			}
			var wanMin, wanMax time.Duration
			if from.zone != to.zone {
				wanMin, wanMax = wanDelayMin, wanDelayMax
			}
			p, err := newFaultyProxy(c.nw.bridgeIP()+":0", fmt.Sprintf("%s:%d", to.ip, clusterPort), int64(from.idx*10+to.idx), wanMin, wanMax)
			if err != nil {
				return fmt.Errorf("proxy: %w", err)
			}
			c.proxies = append(c.proxies, p)
			if err := c.nw.redirect(from, to.ip, clusterPort, p.port()); err != nil {
				return err
			}
		}
	}
	first := c.nw.hosts[:c.s.nodes]
	c.free = slices.Clone(c.nw.hosts[c.s.nodes:])
	var joins []string
	for _, h := range first {
		joins = append(joins, gossipAddr(h))
	}
	for _, h := range first {
		n := c.newNode(h, slices.DeleteFunc(slices.Clone(joins), func(j string) bool { return j == gossipAddr(h) }))
		if err := n.start(); err != nil {
			return err
		}
		c.members = append(c.members, n)
	}
	// Wait until every node sees every other alive.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c.formed() == nil {
			logf("cluster of %d formed", len(c.members))
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster did not form within 30s: %v", c.formed())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// formed returns nil when every member sees exactly the members, all alive, in
// the ring, or what one sees otherwise.
func (c *cluster) formed() error {
	members := c.memberList()
	want := strconv.Itoa(len(members))
	for _, n := range members {
		info, err := c.info(n)
		if err != nil {
			return fmt.Errorf("%s: INFO: %w", n.name, err)
		}
		if info["cluster_members"] != want || info["cluster_members_alive"] != want {
			return fmt.Errorf("%s sees %s members, %s alive, of %s", n.name, info["cluster_members"], info["cluster_members_alive"], want)
		}
	}
	return nil
}

// admin runs one command against n with a fresh short-lived client.
func (c *cluster) admin(n *node, args ...any) (any, error) {
	cl := newClient(n.resp())
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	return cl.Do(ctx, args...).Result()
}

// info returns n's INFO cluster fields.
func (c *cluster) info(n *node) (map[string]string, error) {
	reply, err := c.admin(n, "INFO", "cluster")
	if err != nil {
		return nil, err
	}
	str, ok := reply.(string)
	if !ok {
		return nil, fmt.Errorf("INFO reply %T", reply)
	}
	out := map[string]string{}
	for _, line := range strings.Split(str, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			out[k] = v
		}
	}
	return out, nil
}

// awaitConvergence polls until every key's LOCAL record is equal on its whole
// preference list and no node has a hint pending, or max passes. It returns the
// converged records (or, when it gives up, the quorum reads) and what still
// differs.
func (c *cluster) awaitConvergence(ctx context.Context, keys []string, max time.Duration, preflists map[string][]string) (map[string]history.Record, bool, []string) {
	members := c.memberList()
	byName := map[string]*node{}
	for _, n := range members {
		byName[n.name] = n
	}
	clients := map[string]*redis.Client{}
	for _, n := range members {
		clients[n.name] = newClient(n.resp())
		defer clients[n.name].Close()
	}
	do := func(name string, args ...any) (any, error) {
		cctx, cancel := context.WithTimeout(ctx, opTimeout)
		defer cancel()
		return clients[name].Do(cctx, args...).Result()
	}
	deadline := time.Now().Add(max)
	for {
		var divergent []string
		final := map[string]history.Record{}
		for _, n := range members {
			info, err := c.info(n)
			if err != nil {
				divergent = append(divergent, fmt.Sprintf("%s: INFO: %v", n.name, err))
			} else if want := strconv.Itoa(len(members)); info["hints_pending"] != "0" || info["cluster_members_alive"] != want || info["cluster_members"] != want {
				divergent = append(divergent, fmt.Sprintf("%s: hints_pending %s, members %s, alive %s (want %s)", n.name, info["hints_pending"], info["cluster_members"], info["cluster_members_alive"], want))
			}
		}
		for _, key := range keys {
			reply, err := do(members[0].name, "DPREFLIST", key)
			pref, ok := reply.([]any)
			if err != nil || !ok {
				divergent = append(divergent, fmt.Sprintf("%s: DPREFLIST: %v", key, err))
				continue
			}
			records := map[string]history.Record{}
			preflists[key] = nil
			for _, p := range pref {
				name, _ := p.(string)
				preflists[key] = append(preflists[key], name)
				if byName[name] == nil {
					divergent = append(divergent, fmt.Sprintf("%s: unknown node %q in the preference list", key, name))
					continue
				}
				var o history.Op
				reply, err := do(name, "DGET", key, "LOCAL")
				if err == nil {
					err = fillDGet(reply, &o)
				}
				if err != nil {
					divergent = append(divergent, fmt.Sprintf("%s: DGET LOCAL on %s: %v", key, name, err))
					continue
				}
				records[name] = history.Record{Context: o.Result, Values: o.Values}
			}
			if d := history.CompareReplicas(records); d != "" {
				divergent = append(divergent, key+": "+d)
			}
			for _, r := range records {
				final[key] = r
			}
		}
		if len(divergent) == 0 {
			return final, true, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			// The loss check still runs, on quorum reads.
			for _, key := range keys {
				var o history.Op
				reply, err := do(members[0].name, "DGET", key)
				if err == nil && fillDGet(reply, &o) == nil {
					final[key] = history.Record{Context: o.Result, Values: o.Values}
				}
			}
			return final, false, divergent
		}
		if err := sleepCtx(ctx, 500*time.Millisecond); err != nil && !errors.Is(err, context.Canceled) {
			return final, false, divergent
		}
	}
}

// summary is the verdict in JSON (summary.json beside the history), for scripts
// that track figures across runs.
type summary struct {
	Seed        int64            `json:"seed"`
	Duration    string           `json:"duration"`
	Nodes       int              `json:"nodes"`
	Zones       int              `json:"zones"`
	Faults      map[string]int   `json:"faults"`
	AckedWrites int              `json:"acked_writes"`
	LostWrites  int              `json:"lost_writes"`
	Violations  int              `json:"violations"`
	StaleReads  int              `json:"stale_reads"`
	Converged   bool             `json:"converged"`
	Latency     []history.Window `json:"latency"`
	Outages     []history.Outage `json:"outages,omitempty"`
}

func writeSummary(path string, s settings, h *history.History, rep *history.Report, converged bool) error {
	data, err := json.MarshalIndent(summary{Seed: s.seed, Duration: s.duration.String(), Nodes: s.nodes, Zones: s.zones,
		Faults: rep.Faults, AckedWrites: rep.AckedWrites, LostWrites: rep.LostWrites(), Violations: len(rep.Violations),
		StaleReads: len(rep.StaleReads), Converged: converged, Latency: rep.Latency, Outages: h.Outages}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// printViolatingKeys prints, for the first max keys with a violation, every
// operation on the key, its preference list and its final record: CI keeps
// only the log, and these lines are what it takes to tell a harness mistake
// from a store bug.
func printViolatingKeys(h *history.History, rep *history.Report, max int) {
	var keys []string
	for _, v := range rep.Violations {
		if !slices.Contains(keys, v.Key) && len(keys) < max {
			keys = append(keys, v.Key)
		}
	}
	for _, key := range keys {
		fmt.Printf("\n== operations on %q (preference list %v; final %+v)\n", key, h.Preflists[key], h.Final[key])
		for _, o := range h.Ops {
			if o.Key != key {
				continue
			}
			line, err := json.Marshal(o)
			if err != nil {
				continue
			}
			fmt.Printf("  %s\n", line)
		}
	}
}

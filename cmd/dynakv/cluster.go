package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/dynakv/dynakv/internal/launch"
	"github.com/dynakv/dynakv/node"
)

// Demo port bases: node i (from 0) listens on base+i for RESP, memcached and HTTP,
// and on gossipBase+2i and gossipBase+2i+1 for gossip and the cluster transport.
const (
	demoRESPBase     = 6379
	demoMemcacheBase = 11211
	demoHTTPBase     = 9121
	demoGossipBase   = 7946
)

func newDemoCmd() *cobra.Command {
	var nodes, zones int
	var dataDir, storage, logLevel string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a local cluster of several nodes in this process",
		Long: `Run a local dynakv cluster in one process: --nodes nodes named dynakv1, dynakv2...
on consecutive ports from the defaults (RESP 6379, memcached 11211, HTTP 9121, gossip
and cluster transport from 7946), with data under --data-dir/<name>. With --zones K
the nodes are dealt round-robin into K zones named zone-1..zone-K (dynakv1 in
zone-1, dynakv2 in zone-2, ..., dynakv<K+1> in zone-1 again), so every key's
replicas spread over them. It prints how to reach every node and stops cleanly on
Ctrl-C. The cluster secret is $DYNAKV_SECRET, or
a random one printed at start (a node started with 'dynakv server --join' needs it).
'dynakv launch' runs each node as its own process on free ports, for scripts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := newLogger(logLevel, "text")
			if err != nil {
				return err
			}
			if nodes < 1 || nodes > 32 {
				return fmt.Errorf("--nodes must be between 1 and 32, not %d", nodes)
			}
			if zones < 0 || zones > nodes {
				return fmt.Errorf("--zones must be between 0 (no zones) and --nodes (%d), not %d", nodes, zones)
			}
			secret, err := clusterSecret()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return runDemo(ctx, cmd.OutOrStdout(), demoConfigs(nodes, zones, dataDir, storage, secret, logger), secret)
		},
	}
	f := cmd.Flags()
	f.IntVar(&nodes, "nodes", 3, "number of nodes")
	f.IntVar(&zones, "zones", 0, "deal the nodes round-robin into this many zones, zone-1..zone-K (0: no zones)")
	f.StringVar(&dataDir, "data-dir", "data", "parent directory of the nodes' data directories")
	f.StringVar(&storage, "storage", node.StorageDisk, `storage engine: "disk" or "memory"`)
	f.StringVar(&logLevel, "log-level", "warn", "log level: debug, info, warn, error")
	return cmd
}

// clusterSecret returns $DYNAKV_SECRET, or a random secret when it is not set.
func clusterSecret() (string, error) {
	if s := os.Getenv("DYNAKV_SECRET"); s != "" {
		return s, nil
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("cluster secret: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// demoConfigs returns the configurations of a local cluster of count nodes: the
// first is the seed the others join (restarted, each rejoins through the members it
// persisted). With zones > 0, node i (from 0) is in launch.ZoneName(i, zones).
func demoConfigs(count, zones int, dataDir, storage, secret string, logger *slog.Logger) []node.Config {
	gossip := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", demoGossipBase+2*i) }
	cfgs := make([]node.Config, count)
	for i := range cfgs {
		c := node.DefaultConfig()
		c.Name = fmt.Sprintf("dynakv%d", i+1)
		c.DataDir = filepath.Join(dataDir, c.Name)
		c.Storage = storage
		c.RESPAddr = fmt.Sprintf("127.0.0.1:%d", demoRESPBase+i)
		c.MemcacheAddr = fmt.Sprintf("127.0.0.1:%d", demoMemcacheBase+i)
		c.HTTPAddr = fmt.Sprintf("127.0.0.1:%d", demoHTTPBase+i)
		c.GossipAddr = gossip(i)
		c.ClusterAddr = fmt.Sprintf("127.0.0.1:%d", demoGossipBase+2*i+1)
		c.Secret = secret
		c.Version = version
		c.Logger = logger
		if zones > 0 {
			c.Zone = launch.ZoneName(i, zones)
		}
		if i > 0 {
			c.Join = []string{gossip(0)}
		}
		cfgs[i] = c
	}
	return cfgs
}

func runDemo(ctx context.Context, out io.Writer, cfgs []node.Config, secret string) error {
	var nodes []*node.Node
	defer func() {
		for i := len(nodes) - 1; i >= 0; i-- {
			nodes[i].Close()
		}
	}()
	for _, c := range cfgs {
		n, err := node.Start(c)
		if err != nil {
			return fmt.Errorf("start %s: %w", c.Name, err)
		}
		nodes = append(nodes, n)
	}
	waitConverged(ctx, nodes, 10*time.Second)
	var zones []string // in order of first appearance
	for _, c := range cfgs {
		if c.Zone != "" && !slices.Contains(zones, c.Zone) {
			zones = append(zones, c.Zone)
		}
	}
	inZones := ""
	if len(zones) > 0 {
		inZones = fmt.Sprintf(" in %d zones", len(zones))
	}
	fmt.Fprintf(out, "dynakv demo: %d nodes%s, N=%d R=%d W=%d, cluster secret %s\n\n", len(nodes), inZones, cfgs[0].N, cfgs[0].R, cfgs[0].W, secret)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprint(tw, "NODE\t")
	if len(zones) > 0 {
		fmt.Fprint(tw, "ZONE\t")
	}
	fmt.Fprintln(tw, "REDIS\tMEMCACHED\tMETRICS\tGOSSIP")
	for i, n := range nodes {
		fmt.Fprintf(tw, "%s\t", cfgs[i].Name)
		if len(zones) > 0 {
			fmt.Fprintf(tw, "%s\t", zoneName(cfgs[i].Zone))
		}
		fmt.Fprintf(tw, "redis-cli -p %s\tnc 127.0.0.1 %s\thttp://%s/metrics\t%s\n",
			port(n.RESPAddr()), port(n.MemcacheAddr()), n.HTTPAddr(), n.GossipAddr())
	}
	tw.Flush()
	if n := min(cfgs[0].N, len(nodes)); len(zones) >= n {
		fmt.Fprintf(out, "\nEvery key's %d replicas are in %d distinct zones.\n", n, n)
	} else if len(zones) > 0 {
		fmt.Fprintf(out, "\nEvery key's %d replicas span all %d zones.\n", n, len(zones))
	}
	fmt.Fprintf(out, "\nTry: redis-cli -p %s SET greeting hello && redis-cli -p %s GET greeting\n", port(nodes[0].RESPAddr()), port(nodes[len(nodes)-1].RESPAddr()))
	if len(zones) > 0 {
		fmt.Fprintf(out, "     redis-cli -p %s DPREFLIST greeting WITHZONES\n", port(nodes[0].RESPAddr()))
	}
	fmt.Fprintf(out, "     dynakv status --http %s\n", nodes[0].HTTPAddr())
	fmt.Fprintln(out, "Press Ctrl-C to stop.")
	if err := waitStop(ctx, cfgs[0].Logger, nodes...); err != nil {
		nodes = nil // not closed: see waitStop
		return err
	}
	fmt.Fprintln(out, "\nstopping...")
	return nil
}

// waitConverged waits until every node sees all of them alive, or within passed.
func waitConverged(ctx context.Context, nodes []*node.Node, within time.Duration) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		done := true
		for _, n := range nodes {
			done = done && n.MembersAlive() == len(nodes)
		}
		if done {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func port(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		return addr[i+1:]
	}
	return addr
}

func newStatusCmd() *cobra.Command {
	var httpAddr, caFile string
	var asJSON, watch, partitions bool
	var every time.Duration
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the cluster as one node sees it: members, liveness, partitions, hints, repair and handoff",
		Long: `Show the cluster as the node at --http sees it: members, liveness, the partitions
each one owns, hints, anti-entropy (repair age of this node's partitions) and
partition handoff. When members have zones (dynakv server --zone), a ZONE column,
and a table of the zones: nodes alive of total, the partition replicas the zone
holds, the partitions with a replica in it, and whether every partition's N
replicas are in min(N, zones) distinct zones. --partitions lists every partition this node owns with its repair
age; --watch follows the node (every --every) with a progress bar for its handoff.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			nc, err := newNodeHTTP(httpAddr, caFile)
			if err != nil {
				return err
			}
			fetch := func() (node.Status, []byte, error) {
				ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
				defer cancel()
				body, err := nc.do(ctx, http.MethodGet, "/cluster/status", "")
				if err != nil {
					return node.Status{}, nil, err
				}
				var st node.Status
				if err := json.Unmarshal(body, &st); err != nil {
					return node.Status{}, nil, fmt.Errorf("status from %s: %w", httpAddr, err)
				}
				return st, body, nil
			}
			if !watch {
				st, body, err := fetch()
				if err != nil {
					return err
				}
				if asJSON {
					_, err := out.Write(body)
					return err
				}
				printStatus(out, st, partitions)
				return nil
			}
			return watchStatus(cmd.Context(), out, fetch, every, partitions)
		},
	}
	cmd.Flags().StringVar(&httpAddr, "http", "127.0.0.1:9121", "HTTP address of any node: host:port, or https://host:port for a node with --http-tls")
	cmd.Flags().StringVar(&caFile, "tls-ca", "", "PEM CA bundle to trust for an https:// --http address (default: the system's roots)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the raw JSON")
	cmd.Flags().BoolVar(&partitions, "partitions", false, "list every partition this node owns with its repair age")
	cmd.Flags().BoolVar(&watch, "watch", false, "follow the node until interrupted, with a progress bar for its partition handoff")
	cmd.Flags().DurationVar(&every, "every", time.Second, "refresh interval for --watch")
	return cmd
}

// watchStatus prints the status every interval until ctx ends, with a progress bar
// of the partitions this node has handed off against those it had to.
func watchStatus(ctx context.Context, out io.Writer, fetch func() (node.Status, []byte, error), every time.Duration, partitions bool) error {
	if every <= 0 {
		return fmt.Errorf("--every must be positive, not %v", every)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		st, _, err := fetch()
		if err != nil {
			fmt.Fprintf(out, "%s: %v\n", time.Now().Format(time.TimeOnly), err)
		} else {
			fmt.Fprint(out, "\033[H\033[2J") // clear the terminal between frames
			printStatus(out, st, partitions)
			total := st.AAE.HandoffDone + st.AAE.HandoffPending
			bar := progressbar.NewOptions64(max(total, 1),
				progressbar.OptionSetWriter(out),
				progressbar.OptionSetDescription(fmt.Sprintf("handoff (%d keys left)", st.AAE.HandoffKeysPending)),
				progressbar.OptionShowCount(),
				progressbar.OptionSetWidth(30),
				progressbar.OptionSetRenderBlankState(true))
			if total == 0 {
				_ = bar.Set64(1) // nothing to hand off: done
			} else {
				_ = bar.Set64(st.AAE.HandoffDone)
			}
			fmt.Fprintln(out)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func printStatus(out io.Writer, st node.Status, partitions bool) {
	fmt.Fprintf(out, "node %s: N=%d R=%d W=%d, %d partitions, %d keys here, hints pending %d, delivered %d, read repairs %d\n",
		st.Node, st.N, st.R, st.W, st.Partitions, st.Keys, st.HintsPending, st.HintsDelivered, st.ReadRepairs)
	a := st.AAE
	var ages []int64
	never := 0
	for _, p := range a.Partitions {
		if p.RepairAgeMS < 0 {
			never++
			continue
		}
		ages = append(ages, p.RepairAgeMS)
	}
	slices.Sort(ages)
	repair := "no exchange yet"
	if len(ages) > 0 {
		repair = fmt.Sprintf("repair age median %v, oldest %v", msDuration(ages[len(ages)/2]), msDuration(ages[len(ages)-1]))
	}
	interval := "off"
	if a.IntervalMS > 0 {
		interval = msDuration(a.IntervalMS).String()
	}
	fmt.Fprintf(out, "anti-entropy every %s: %d rounds, %d exchanges, %d keys repaired, %d tombstones purged; %d partitions owned, %s (%d never)\n",
		interval, a.Rounds, a.Exchanges, a.KeysRepaired, a.TombstonesPurged, len(a.Partitions), repair, never)
	fmt.Fprintf(out, "handoff: %d partitions pending (%d keys), %d done\n\n", a.HandoffPending, a.HandoffKeysPending, a.HandoffDone)
	// The ZONE column shows only when some member has a zone, so that a cluster
	// without zones prints what it always did.
	zoned := slices.ContainsFunc(st.Members, func(m node.MemberStatus) bool { return m.Zone != "" })
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprint(tw, "MEMBER\t")
	if zoned {
		fmt.Fprint(tw, "ZONE\t")
	}
	fmt.Fprintln(tw, "STATE\tLIVENESS\tPRIMARIES\tREPLICAS\tHINTS HERE\tRESP\tMEMCACHED\tHTTP")
	for _, m := range st.Members {
		alive := "dead"
		if m.Alive {
			alive = "alive"
		}
		fmt.Fprintf(tw, "%s\t", m.Name)
		if zoned {
			fmt.Fprintf(tw, "%s\t", zoneName(m.Zone))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\n", m.State, alive, m.Primaries, m.Replicas,
			st.HintsByOwner[m.Name], m.RESPAddr, m.MemcacheAddr, m.HTTPAddr)
	}
	tw.Flush()
	printZones(out, st)
	if !partitions {
		return
	}
	fmt.Fprintln(out)
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tKEYS\tREPAIR AGE")
	for _, p := range a.Partitions {
		age := "never"
		if p.RepairAgeMS >= 0 {
			age = msDuration(p.RepairAgeMS).String()
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\n", p.Partition, p.Keys, age)
	}
	tw.Flush()
}

// printZones prints the per-zone table and the placement check, when the ring
// has more than one zone.
func printZones(out io.Writer, st node.Status) {
	if len(st.Zones) == 0 {
		return
	}
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ZONE\tNODES ALIVE\tPARTITION REPLICAS\tPARTITIONS COVERED")
	for _, z := range st.Zones {
		fmt.Fprintf(tw, "%s\t%d/%d\t%d\t%d/%d\n", zoneName(z.Zone), z.MembersAlive, z.Members, z.Replicas, z.Partitions, st.Partitions)
	}
	tw.Flush()
	spread := min(st.N, len(st.Zones))
	switch {
	case st.PartitionsNotSpread == 0 && spread == st.N:
		fmt.Fprintf(out, "placement: every partition's %d replicas are in %d distinct zones\n", st.N, spread)
	case st.PartitionsNotSpread == 0:
		fmt.Fprintf(out, "placement: every partition has replicas in all %d zones\n", spread)
	default:
		fmt.Fprintf(out, "placement: WARNING: %d partitions have their %d replicas in fewer than %d zones\n",
			st.PartitionsNotSpread, st.N, spread)
	}
}

// zoneName is how status shows a zone: "-" for the members without one.
func zoneName(z string) string {
	if z == "" {
		return "-"
	}
	return z
}

func msDuration(ms int64) time.Duration {
	return (time.Duration(ms) * time.Millisecond).Round(100 * time.Millisecond)
}

func newAdminCmd() *cobra.Command {
	var httpAddr, secret, caFile string
	admin := &cobra.Command{
		Use:   "admin",
		Short: "Change cluster membership",
		Long: `Change cluster membership through a node's admin HTTP address. The node checks the
admin token derived from the cluster secret (--secret, default $DYNAKV_SECRET): the
request carries "Authorization: Bearer <token>"; 'dynakv admin token' prints it, for
curl and for /debug/pprof.`,
	}
	token := func(cmd *cobra.Command) string {
		flagOrEnv(cmd, "secret", "DYNAKV_SECRET", &secret)
		return node.AdminToken(secret)
	}
	remove := &cobra.Command{
		Use:   "remove NAME",
		Short: "Take a dead node out of the ring (its partitions move to the others)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
			defer cancel()
			nc, err := newNodeHTTP(httpAddr, caFile)
			if err != nil {
				return err
			}
			if _, err := nc.do(ctx, http.MethodPost, "/cluster/remove?name="+url.QueryEscape(args[0]), token(cmd)); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s removed from the ring\n", args[0])
			return nil
		},
	}
	leave := &cobra.Command{
		Use:   "leave",
		Short: "Make the node at --http leave: it hands its partitions to their new owners, then leaves the ring",
		Long: `Make the node at --http leave the cluster gracefully. It stops owning partitions at
once (their new owners serve them, and the other previous owners still hold every
key), pushes its copies to the new owners, drops each partition once they all hold
it, and then marks itself removed. Follow it with 'dynakv status --watch'; stop the
process once its state is "removed".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
			defer cancel()
			nc, err := newNodeHTTP(httpAddr, caFile)
			if err != nil {
				return err
			}
			if _, err := nc.do(ctx, http.MethodPost, "/cluster/leave", token(cmd)); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "the node at %s is leaving: it hands its partitions off, then leaves the ring\n", httpAddr)
			return nil
		},
	}
	tok := &cobra.Command{
		Use:   "token",
		Short: "Print the admin token of the cluster secret (for curl -H \"Authorization: Bearer ...\")",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), token(cmd))
			return nil
		},
	}
	admin.PersistentFlags().StringVar(&httpAddr, "http", "127.0.0.1:9121", "admin HTTP address of a live node (for leave: the node that leaves): host:port, or https://host:port for a node with --http-tls")
	admin.PersistentFlags().StringVar(&caFile, "tls-ca", "", "PEM CA bundle to trust for an https:// --http address (default: the system's roots)")
	admin.PersistentFlags().StringVar(&secret, "secret", "", "cluster secret the admin token is derived from (default $DYNAKV_SECRET)")
	admin.AddCommand(remove, leave, tok)
	return admin
}

// nodeHTTP reaches a node's HTTP port. Its address is host:port (plain HTTP) or
// a URL, https://host:port for a node started with --http-tls; the CA of
// --tls-ca is then trusted (default: the system's roots).
type nodeHTTP struct {
	base string // scheme://host:port
	hc   *http.Client
}

func newNodeHTTP(addr, caFile string) (*nodeHTTP, error) {
	base := addr
	if !strings.Contains(addr, "://") {
		base = "http://" + addr
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("--http %q: want host:port, http://host:port or https://host:port", addr)
	}
	c := &nodeHTTP{base: u.Scheme + "://" + u.Host, hc: http.DefaultClient}
	if caFile != "" {
		if u.Scheme != "https" {
			return nil, fmt.Errorf("--tls-ca is for an https:// --http address, not %q", addr)
		}
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-ca %s: no PEM certificate in it", caFile)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		c.hc = &http.Client{Transport: tr}
	}
	return c, nil
}

// do makes a request for path (with its query), with the admin token as a bearer
// token when it is not empty, and returns the body of a 200 reply.
func (c *nodeHTTP) do(ctx context.Context, method, path, token string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New(strings.TrimSpace(string(body)))
	}
	return body, nil
}

package launch

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/dynakv/dynakv/internal/freeport"
)

// Node is the command line of one `dynakv server`. An empty field passes no flag,
// so the server's default (or, for the secret, $DYNAKV_SECRET) applies.
type Node struct {
	Name    string
	DataDir string
	Storage string // "disk" or "memory"
	// Listen addresses, host:port.
	RESP, Memcache, HTTP, Gossip, Cluster string
	Secret                                string
	// Zone is the node's --zone ("": none).
	Zone string
	// Join lists the gossip addresses of existing members; empty: the node starts
	// a cluster of its own.
	Join     []string
	LogLevel string
	// Extra flags come last: a flag given again here overrides the one above.
	Extra []string
}

// Args returns the server's arguments, from "server" on.
func (n Node) Args() []string {
	args := []string{"server"}
	add := func(flag, v string) {
		if v != "" {
			args = append(args, flag, v)
		}
	}
	add("--name", n.Name)
	add("--data-dir", n.DataDir)
	add("--storage", n.Storage)
	add("--resp", n.RESP)
	add("--memcache", n.Memcache)
	add("--http", n.HTTP)
	add("--gossip", n.Gossip)
	add("--cluster", n.Cluster)
	add("--secret", n.Secret)
	add("--zone", n.Zone)
	add("--join", strings.Join(n.Join, ","))
	add("--log-level", n.LogLevel)
	return append(args, n.Extra...)
}

// FreePorts returns n with each empty listen address set to a free loopback one
// (internal/freeport), in the order RESP, memcached, HTTP, gossip, cluster.
func (n Node) FreePorts() (Node, error) {
	for _, a := range []*string{&n.RESP, &n.Memcache, &n.HTTP, &n.Gossip, &n.Cluster} {
		if *a != "" {
			continue
		}
		var err error
		if *a, err = freeport.Addr(); err != nil {
			return n, fmt.Errorf("launch: %s: %w", n.Name, err)
		}
	}
	return n, nil
}

// Spec returns how to run n with the dynakv binary bin, its output going to out
// (nil discards it). Ready it with Healthy(n.HTTP).
func (n Node) Spec(bin string, out io.Writer) Spec {
	return Spec{Name: n.Name, Path: bin, Args: n.Args(), Output: out}
}

// Config is a local cluster of Count nodes on loopback.
type Config struct {
	// Binary is the dynakv binary; required by StartCluster.
	Binary string
	// Count is the number of nodes; default 1.
	Count int
	// Prefix names the nodes Prefix<First>, Prefix<First+1>...; default "dynakv".
	Prefix string
	// First is the number of the first node's name; default 1.
	First int
	// Dir holds the data directories, Dir/<name>; "" leaves the server's default.
	Dir string
	// LogDir, when set, receives each node's output, appended to LogDir/<name>.log;
	// otherwise StartCluster keeps the last 8 KiB of it in memory, for its errors.
	LogDir string
	// Storage, Secret and LogLevel are every node's flags ("": none).
	Storage, Secret, LogLevel string
	// Join lists the gossip addresses of a running cluster for every node to join;
	// empty: the first node is the seed the others join.
	Join []string
	// Gossip fixes the gossip addresses of the first len(Gossip) nodes (to start a
	// node again under its name); the others get free ports.
	Gossip []string
	// Extra flags are appended to every node's command line.
	Extra []string
	// Zones, when > 0, deals the nodes round-robin into that many zones by their
	// number: node Prefix<k> gets --zone ZoneName(k-1, Zones), so zone-1, zone-2,
	// ..., and a node added later with First (or started again under its name)
	// lands in the zone it would have had from the start. 0: no zones. Starting a
	// new cluster (no Join), Zones must not exceed Count.
	Zones int
	// StartTimeout bounds each node's start and then the wait for the members;
	// default 30s.
	StartTimeout time.Duration
	// Members is how many members alive each node must see before StartCluster
	// returns; 0: Count when Join is empty, else no wait.
	Members int
}

// EnsureDefaults returns c with its defaults filled in.
func (c Config) EnsureDefaults() Config {
	if c.Count <= 0 {
		c.Count = 1
	}
	if c.Prefix == "" {
		c.Prefix = "dynakv"
	}
	if c.First <= 0 {
		c.First = 1
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = 30 * time.Second
	}
	if c.Members == 0 && len(c.Join) == 0 {
		c.Members = c.Count
	}
	return c
}

// ZoneName is the zone of node i (from 0) of a cluster dealt round-robin into
// zones zones: "zone-<i%zones+1>". Config.Zones and `dynakv demo --zones` use it.
func ZoneName(i, zones int) string { return fmt.Sprintf("zone-%d", i%zones+1) }

// Nodes returns the command lines of c's nodes, each on free loopback ports.
func (c Config) Nodes() ([]Node, error) {
	c = c.EnsureDefaults()
	if c.Zones < 0 || c.Zones > c.Count && len(c.Join) == 0 {
		return nil, fmt.Errorf("launch: %d zones for a new cluster of %d nodes: want 0 to %d", c.Zones, c.Count, c.Count)
	}
	nodes := make([]Node, c.Count)
	for i := range nodes {
		n := Node{Name: fmt.Sprintf("%s%d", c.Prefix, c.First+i), Storage: c.Storage, Secret: c.Secret,
			LogLevel: c.LogLevel, Extra: c.Extra}
		if c.Zones > 0 {
			n.Zone = ZoneName(c.First-1+i, c.Zones)
		}
		if c.Dir != "" {
			n.DataDir = filepath.Join(c.Dir, n.Name)
		}
		if i < len(c.Gossip) {
			n.Gossip = c.Gossip[i]
		}
		switch {
		case len(c.Join) > 0:
			n.Join = c.Join
		case i > 0:
			n.Join = []string{nodes[0].Gossip}
		}
		var err error
		if nodes[i], err = n.FreePorts(); err != nil {
			return nil, err
		}
	}
	return nodes, nil
}

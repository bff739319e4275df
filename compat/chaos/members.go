package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dynakv/dynakv/compat/chaos/history"
	"github.com/dynakv/dynakv/internal/launch"
)

// chaosSecret is the cluster secret of every node; admin commands derive their
// token from it.
const chaosSecret = "chaos-secret"

// Bounds on the ring's size while membership faults run: N=3 stays meaningful and
// a quorum can be met with one member down.
const (
	minMembers = 4
	maxMembers = 7
)

// cluster is the running system under test and the harness's handle on it.
type cluster struct {
	nw      *network
	proxies []*faultyProxy
	rec     *recorder
	logf    func(string, ...any)
	s       settings
	bin     string

	mu sync.Mutex
	// nodes are every node this run started, in order (for logs and cleanup);
	// members are the ring's members now (a node leaving is none); free are the
	// hosts with no node, ready for one to join; gens counts each host's nodes,
	// so a new one gets a fresh name (a removed name cannot come back).
	nodes, members []*node
	free           []*host
	gens           map[int]int
	faults         []history.Fault
	outages        []history.Outage
	// crashes are exits no fault caused; diskFullExits are exits while a node's
	// disk was full.
	crashes, diskFullExits []string
}

// memberList returns the ring's members now.
func (c *cluster) memberList() []*node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.members)
}

// started counts the nodes (names) this run has made.
func (c *cluster) started() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.nodes)
}

func (c *cluster) freeHosts() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.free)
}

// newNode makes the next node of host h, joining through join (gossip addresses),
// without starting it.
func (c *cluster) newNode(h *host, join []string) *node {
	c.mu.Lock()
	c.gens[h.idx]++
	name := fmt.Sprintf("n%d", h.idx)
	if g := c.gens[h.idx]; g > 1 {
		name = fmt.Sprintf("n%d-%d", h.idx, g)
	}
	n := &node{h: h, name: name, bin: c.bin, dataDir: filepath.Join(h.mnt, name),
		logPath: filepath.Join(filepath.Dir(h.mnt), name+".log")}
	c.nodes = append(c.nodes, n)
	c.mu.Unlock()
	n.cmdline = launch.Node{Name: n.name, DataDir: n.dataDir, RESP: n.resp(), Memcache: n.memcache(), HTTP: n.http(),
		Gossip: gossipAddr(h), Cluster: fmt.Sprintf("%s:%d", h.ip, clusterPort), Secret: chaosSecret,
		Join: join, LogLevel: "warn",
		Extra: []string{"--n", "3", "--r", "2", "--w", "2", "--aae-interval", c.s.aae.String(),
			"--tombstone-grace", c.s.grace.String(), "--request-timeout", c.s.requestTimeout.String()}}
	if h.zone != "" {
		n.cmdline.Extra = append(n.cmdline.Extra, "--zone", h.zone)
	}
	return n
}

func gossipAddr(h *host) string { return fmt.Sprintf("%s:%d", h.ip, gossipPort) }

// joinAddrs are the gossip addresses of the members in ns other than skip.
func joinAddrs(ns []*node, skip *node) []string {
	var out []string
	for _, n := range ns {
		if n != skip {
			out = append(out, gossipAddr(n.h))
		}
	}
	return out
}

// retire takes n out of the members (if it is one) and frees its host once its
// process has exited: its data directory is deleted, the next node there gets a
// new name.
func (c *cluster) retire(n *node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.members = slices.DeleteFunc(c.members, func(m *node) bool { return m == n })
	if !n.running() {
		_ = os.RemoveAll(n.dataDir)
		c.free = append(c.free, n.h)
	}
}

// join starts a new node on a free host; it becomes a member once it answers.
func (c *cluster) join() (*node, error) {
	c.mu.Lock()
	if len(c.free) == 0 {
		c.mu.Unlock()
		return nil, fmt.Errorf("no free host")
	}
	h := c.free[0]
	c.free = c.free[1:]
	c.mu.Unlock()
	n := c.newNode(h, joinAddrs(c.memberList(), nil))
	if err := n.start(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.members = append(c.members, n)
	slices.SortFunc(c.members, func(a, b *node) int { return a.h.idx - b.h.idx })
	c.mu.Unlock()
	return n, nil
}

// admin runs `dynakv admin ARGS` against the HTTP port of via.
func (c *cluster) adminCmd(via *node, args ...string) error {
	args = append(append([]string{"admin"}, args...), "--http", via.http(), "--secret", chaosSecret)
	out, err := exec.Command(c.bin, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("dynakv %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// memberState returns name's state ("active", "leaving", "removed"; "" when
// absent) as the node at via sees it.
func memberState(via *node, name string) (string, error) {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + via.http() + "/cluster/status")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var st struct {
		Members []struct {
			Name  string `json:"name"`
			State string `json:"state"`
		} `json:"members"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return "", fmt.Errorf("status of %s: %w", via.name, err)
	}
	for _, m := range st.Members {
		if m.Name == name {
			return m.State, nil
		}
	}
	return "", nil
}

// beginOutage notes that down were just killed while every other member is
// healthy; the returned func ends the outage (rule 10 of package history).
func (c *cluster) beginOutage(alive int, down ...*node) func() { return c.outage(alive, false, down) }

// beginCut notes that down were just cut from every other member, all healthy
// (a zone partitioned away: rule 10 judges the requests through the others).
func (c *cluster) beginCut(alive int, down ...*node) func() { return c.outage(alive, true, down) }

func (c *cluster) outage(alive int, cut bool, down []*node) func() {
	start := c.rec.now()
	return func() {
		var names []string
		for _, n := range down {
			names = append(names, n.name)
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		c.outages = append(c.outages, history.Outage{Start: start, End: c.rec.now(), Down: names, Alive: alive, Cut: cut})
	}
}

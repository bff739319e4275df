package launch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// stopGrace is how long Cluster.Close gives each node to stop on SIGTERM.
const stopGrace = 10 * time.Second

// Cluster is a local cluster StartCluster started.
type Cluster struct {
	Nodes []Node // the command lines, Nodes[i] run by Procs[i]
	Procs []*Proc
	logs  []string  // LogDir/<name>.log, or ""
	tails []*Buffer // the output, when there is no log file
}

// StartCluster plans c's nodes (Config.Nodes) and starts them one after the
// other, each once the one before answers /healthz; then it waits until every
// node sees c.Members members alive. On an error the returned Cluster (nil only if
// c is invalid) holds what was started: Close it.
func StartCluster(ctx context.Context, c Config) (*Cluster, error) {
	c = c.EnsureDefaults()
	if c.Binary == "" {
		return nil, errors.New("launch: no dynakv binary")
	}
	nodes, err := c.Nodes()
	if err != nil {
		return nil, err
	}
	cl := &Cluster{}
	for _, n := range nodes {
		spec := n.Spec(c.Binary, nil)
		var f *os.File
		var tail *Buffer
		if c.LogDir != "" {
			path := filepath.Join(c.LogDir, n.Name+".log")
			if f, err = os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
				return cl, fmt.Errorf("launch: %w", err)
			}
			spec.Output = f
			cl.logs = append(cl.logs, path)
		} else {
			tail = &Buffer{Max: 8 << 10}
			spec.Output = tail
			cl.logs = append(cl.logs, "")
		}
		p, err := Start(spec)
		if f != nil {
			f.Close() // the process has its own copy
		}
		if err != nil {
			return cl, err
		}
		cl.Nodes, cl.Procs, cl.tails = append(cl.Nodes, n), append(cl.Procs, p), append(cl.tails, tail)
		if err := p.Ready(ctx, Healthy(n.HTTP), c.StartTimeout); err != nil {
			return cl, cl.withOutput(len(cl.Procs)-1, err)
		}
	}
	if c.Members > 0 {
		for i, n := range cl.Nodes {
			if err := cl.Procs[i].Ready(ctx, MembersAlive(n.HTTP, c.Members), c.StartTimeout); err != nil {
				return cl, cl.withOutput(i, err)
			}
		}
	}
	return cl, nil
}

// output returns the end of node i's output: the last 8 KiB kept in memory, or
// the last 40 lines of its log file.
func (cl *Cluster) output(i int) string {
	if cl.tails[i] != nil {
		return cl.tails[i].String()
	}
	data, err := os.ReadFile(cl.logs[i])
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-40):], "\n")
}

func (cl *Cluster) withOutput(i int, err error) error {
	return fmt.Errorf("%w\n%s", err, cl.output(i))
}

// Close stops every node, all at once (SIGTERM, SIGKILL after 10 s), and returns
// the errors of those that had to be killed.
func (cl *Cluster) Close() error {
	errs := make([]error, len(cl.Procs))
	var wg sync.WaitGroup
	for i, p := range cl.Procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.Stop(stopGrace)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// WriteEnv writes the cluster as bash assignments, one array per field, indexed
// like Nodes: DYNAKV_NAME, DYNAKV_PID, DYNAKV_RESP, DYNAKV_MEMCACHE, DYNAKV_HTTP,
// DYNAKV_GOSSIP, DYNAKV_CLUSTER (host:port), DYNAKV_DATA, DYNAKV_LOG and DYNAKV_ZONE
// (an empty string for a node without a zone), and DYNAKV_SECRET.
func (cl *Cluster) WriteEnv(w io.Writer) error {
	var b strings.Builder
	field := func(name string, v func(i int, n Node) string) {
		fmt.Fprintf(&b, "DYNAKV_%s=(", name)
		for i, n := range cl.Nodes {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(shellQuote(v(i, n)))
		}
		b.WriteString(")\n")
	}
	field("NAME", func(_ int, n Node) string { return n.Name })
	field("PID", func(i int, _ Node) string { return fmt.Sprint(cl.Procs[i].Pid()) })
	field("RESP", func(_ int, n Node) string { return n.RESP })
	field("MEMCACHE", func(_ int, n Node) string { return n.Memcache })
	field("HTTP", func(_ int, n Node) string { return n.HTTP })
	field("GOSSIP", func(_ int, n Node) string { return n.Gossip })
	field("CLUSTER", func(_ int, n Node) string { return n.Cluster })
	field("DATA", func(_ int, n Node) string { return n.DataDir })
	field("LOG", func(i int, _ Node) string { return cl.logs[i] })
	field("ZONE", func(_ int, n Node) string { return n.Zone })
	secret := ""
	if len(cl.Nodes) > 0 {
		secret = cl.Nodes[0].Secret
	}
	fmt.Fprintf(&b, "DYNAKV_SECRET=%s\n", shellQuote(secret))
	_, err := io.WriteString(w, b.String())
	return err
}

// shellQuote quotes s for sh: in single quotes, each single quote in s ending
// the quoted text, escaped, and opening it again.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

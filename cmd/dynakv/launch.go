package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/dynakv/dynakv/internal/freeport"
	"github.com/dynakv/dynakv/internal/launch"
)

// launchFlags are the command line of `dynakv launch`.
type launchFlags struct {
	cfg     launch.Config
	env     string
	secret  string
	dataDir string
}

func newLaunchCmd() *cobra.Command {
	var lf launchFlags
	cmd := &cobra.Command{
		Use:   "launch [flags] [-- server flags]",
		Short: "Run a local cluster of dynakv server processes on free ports (for scripts)",
		Long: `Run a local cluster as separate 'dynakv server' processes: --nodes nodes named
<name>1, <name>2... on free loopback ports (22000-31999), data under --dir/<name>,
each node's output appended to --dir/<name>.log; the first node is the seed the
others join (with --join, every node joins that cluster instead). With --zones K,
node <name><k> gets --zone zone-<(k-1)%K+1>: the nodes dealt round-robin into
zone-1..zone-K by number, so a node added with --first lands where it would have
from the start. Flags after -- go to every node's 'dynakv server' and override the
launcher's.

Once every node answers and sees --members members alive, it prints how to reach
them and, with --env FILE, writes them to FILE as bash arrays for scripts to source:
DYNAKV_NAME, DYNAKV_PID, DYNAKV_RESP, DYNAKV_MEMCACHE, DYNAKV_HTTP, DYNAKV_GOSSIP,
DYNAKV_CLUSTER (host:port), DYNAKV_DATA, DYNAKV_LOG, DYNAKV_ZONE (empty without
--zones), and DYNAKV_SECRET. It runs until
SIGINT or SIGTERM, then stops the nodes (SIGTERM; SIGKILL after 10s) and exits.

Unlike 'dynakv demo' (one process, fixed ports, for people), every node here is its
own process, which a script may kill, pause or start again: a node started again
with --first, --gossip (its old gossip address) and --join rejoins under its name.`,
		Example: `  dynakv launch --nodes 3 --dir /tmp/c --env /tmp/c/env -- --storage memory &
  until [ -s /tmp/c/env ]; do sleep 0.1; done; . /tmp/c/env
  redis-cli -p "${DYNAKV_RESP[0]##*:}" PING`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return runLaunch(ctx, cmd.OutOrStdout(), lf, args)
		},
	}
	f := cmd.Flags()
	f.IntVar(&lf.cfg.Count, "nodes", 3, "number of nodes")
	f.StringVar(&lf.cfg.Prefix, "name", "dynakv", "node names: <name>1, <name>2...")
	f.IntVar(&lf.cfg.First, "first", 1, "number of the first node's name")
	f.IntVar(&lf.cfg.Zones, "zones", 0, "deal the nodes round-robin by number into this many zones, zone-1..zone-K (0: no zones)")
	f.StringVar(&lf.dataDir, "dir", "", "directory of the nodes' data directories and logs (default: a temporary one, removed at exit)")
	f.StringVar(&lf.cfg.Storage, "storage", "disk", `storage engine: "disk" or "memory"`)
	f.StringVar(&lf.secret, "secret", "", "cluster secret (default $DYNAKV_SECRET, else a random one)")
	f.StringSliceVar(&lf.cfg.Join, "join", nil, "gossip addresses of a running cluster for every node to join")
	f.StringSliceVar(&lf.cfg.Gossip, "gossip", nil, "gossip addresses of the first nodes, in order (default: free ports)")
	f.StringVar(&lf.cfg.LogLevel, "log-level", "warn", "the nodes' log level")
	f.IntVar(&lf.cfg.Members, "members", 0, "members alive every node must see before the cluster counts as up (default: --nodes without --join, else no wait)")
	f.DurationVar(&lf.cfg.StartTimeout, "timeout", 30*time.Second, "bound on each node's start, and on the wait for the members")
	f.StringVar(&lf.env, "env", "", "write the nodes' addresses and PIDs to this file (bash arrays) once they are up")
	return cmd
}

func runLaunch(ctx context.Context, out io.Writer, lf launchFlags, serverArgs []string) (err error) {
	cfg := lf.cfg
	if cfg.Count < 1 || cfg.Count > 32 {
		return fmt.Errorf("--nodes must be between 1 and 32, not %d", cfg.Count)
	}
	if cfg.Binary, err = os.Executable(); err != nil {
		return fmt.Errorf("the dynakv binary: %w", err)
	}
	dir := lf.dataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "dynakv-launch-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cfg.Dir, cfg.LogDir = dir, dir
	if cfg.Secret = lf.secret; cfg.Secret == "" {
		if cfg.Secret, err = clusterSecret(); err != nil {
			return err
		}
	}
	cfg.Extra = serverArgs
	cl, err := launch.StartCluster(ctx, cfg)
	if cl != nil {
		defer func() {
			if cerr := cl.Close(); err == nil {
				err = cerr
			}
		}()
	}
	if err != nil {
		return err
	}
	if lf.env != "" {
		if err := writeFileAtomic(lf.env, cl.WriteEnv); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "dynakv launch: %d node(s), data and logs under %s\n\n", len(cl.Nodes), dir)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprint(tw, "NODE\t")
	if cfg.Zones > 0 {
		fmt.Fprint(tw, "ZONE\t")
	}
	fmt.Fprintln(tw, "PID\tRESP\tMEMCACHED\tHTTP\tGOSSIP")
	for i, n := range cl.Nodes {
		fmt.Fprintf(tw, "%s\t", n.Name)
		if cfg.Zones > 0 {
			fmt.Fprintf(tw, "%s\t", n.Zone)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", cl.Procs[i].Pid(), n.RESP, n.Memcache, n.HTTP, n.Gossip)
	}
	tw.Flush()
	fmt.Fprintln(out, "Stop with Ctrl-C or SIGTERM.")
	<-ctx.Done()
	return nil
}

// writeFileAtomic writes path through a temporary file renamed into place, so a
// reader polling for path never sees it half written.
func writeFileAtomic(path string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	err = write(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("--env %s: %w", path, err)
	}
	return nil
}

func newFreePortCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "freeport [COUNT]",
		Short:  "Print COUNT (default 1) distinct free loopback TCP ports, one a line, from internal/freeport's range (for scripts)",
		Args:   cobra.MaximumNArgs(1),
		Hidden: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			count := 1
			if len(args) == 1 {
				var err error
				if count, err = strconv.Atoi(args[0]); err != nil || count < 1 {
					return errors.New("COUNT must be a positive number")
				}
			}
			for range count {
				a, err := freeport.Addr()
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), port(a))
			}
			return nil
		},
	}
}

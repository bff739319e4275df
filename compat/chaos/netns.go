package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// network is the harness's private network: one namespace per host, each joined
// by a veth pair to a bridge in the root namespace, where the harness (clients and
// the fault-injecting proxies) has the bridge's address.
type network struct {
	prefix string // every name starts with it: "dkc" + harness pid
	bridge string
	subnet string // "10.99.X"
	hosts  []*host
}

// host is one namespace, with its data disk.
type host struct {
	idx  int // 1-based
	ns   string
	veth string // root-side end of the pair
	ip   string
	mnt  string // the tmpfs its nodes keep their data directories on ("" until mounted)
	zone string // the --zone of every node it runs ("" without --zones)
}

// bridgeIP is the harness's address on the bridge.
func (n *network) bridgeIP() string { return n.subnet + ".254" }

// run runs a command and wraps its output into the error.
func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// output runs a command and returns its standard output.
func output(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return string(out), nil
}

// preflight says why this machine cannot run the harness, or "".
func preflight() string {
	if os.Geteuid() != 0 {
		return "needs root (network namespaces, iptables, tmpfs mounts)"
	}
	for _, tool := range []string{"ip", "iptables", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Sprintf("needs %s (scripts/install-chaos-tools.sh installs it)", tool)
		}
	}
	probe := fmt.Sprintf("dkcprobe%d", os.Getpid())
	if err := run("ip", "netns", "add", probe); err != nil {
		return fmt.Sprintf("cannot create a network namespace: %v", err)
	}
	defer run("ip", "netns", "del", probe)
	if err := run("ip", "netns", "exec", probe, "iptables", "-w", "-t", "nat", "-S"); err != nil {
		return fmt.Sprintf("iptables does not work in a network namespace: %v", err)
	}
	return ""
}

var leftoverName = regexp.MustCompile(`^dkc(\d+)`)

// cleanLeftovers removes namespaces, links and mounts an earlier harness run that
// crashed left behind: names with our prefix whose harness pid is gone. The dynakv
// processes still running in such a namespace were started by that run; they are
// killed by pid before the namespace goes.
func cleanLeftovers(logf func(string, ...any)) {
	dead := func(name string) bool {
		m := leftoverName.FindStringSubmatch(name)
		if m == nil {
			return false
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil || pid == os.Getpid() {
			return false
		}
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			return true
		}
		// A killed harness may linger as a zombie until it is reaped.
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true
		}
		_, after, _ := strings.Cut(string(stat), ") ")
		return strings.HasPrefix(after, "Z")
	}
	if out, err := output("ip", "netns", "list"); err == nil {
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) == 0 || !dead(f[0]) {
				continue
			}
			if pids, err := output("ip", "netns", "pids", f[0]); err == nil {
				for _, p := range strings.Fields(pids) {
					if pid, err := strconv.Atoi(p); err == nil {
						_ = syscall.Kill(pid, syscall.SIGCONT)
						_ = syscall.Kill(pid, syscall.SIGKILL)
					}
				}
			}
			logf("removing leftover namespace %s", f[0])
			_ = run("ip", "netns", "del", f[0])
		}
	}
	if out, err := output("ip", "-o", "link", "show"); err == nil {
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			if dead(name) {
				logf("removing leftover link %s", name)
				_ = run("ip", "link", "del", name)
			}
		}
	}
	if data, err := os.ReadFile("/proc/mounts"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(line)
			if len(f) > 1 && strings.Contains(f[1], "/dkc") {
				base := f[1][strings.LastIndex(f[1], "/dkc")+1:]
				if dead(base) {
					logf("unmounting leftover %s", f[1])
					_ = run("umount", "-l", f[1])
				}
			}
		}
	}
	if dirs, err := filepath.Glob(filepath.Join(os.TempDir(), "dkc*")); err == nil {
		for _, d := range dirs {
			if dead(filepath.Base(d)) {
				logf("removing leftover %s", d)
				_ = os.RemoveAll(d)
			}
		}
	}
}

// freeSubnet picks a 10.99.X.0/24 no route uses yet.
func freeSubnet() (string, error) {
	routes, err := output("ip", "-4", "route", "show")
	if err != nil {
		return "", err
	}
	for x := 10 + os.Getpid()%200; x < 10+os.Getpid()%200+250; x++ {
		s := fmt.Sprintf("10.99.%d", x%250+1)
		if !strings.Contains(routes, s+".") {
			return s, nil
		}
	}
	return "", fmt.Errorf("no free 10.99.X.0/24 subnet")
}

// newNetwork creates the bridge and n namespaces. On error it removes what it made.
func newNetwork(prefix string, n int) (_ *network, err error) {
	subnet, err := freeSubnet()
	if err != nil {
		return nil, err
	}
	nw := &network{prefix: prefix, bridge: prefix + "br", subnet: subnet}
	defer func() {
		if err != nil {
			nw.close()
		}
	}()
	if err := run("ip", "link", "add", nw.bridge, "type", "bridge"); err != nil {
		return nil, err
	}
	if err := run("ip", "addr", "add", nw.bridgeIP()+"/24", "dev", nw.bridge); err != nil {
		return nil, err
	}
	if err := run("ip", "link", "set", nw.bridge, "up"); err != nil {
		return nil, err
	}
	for i := 1; i <= n; i++ {
		h := &host{idx: i, ns: fmt.Sprintf("%sn%d", prefix, i), veth: fmt.Sprintf("%sv%d", prefix, i), ip: fmt.Sprintf("%s.%d", subnet, i)}
		nw.hosts = append(nw.hosts, h)
		for _, args := range [][]string{
			{"netns", "add", h.ns},
			{"link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", h.ns},
			{"link", "set", h.veth, "master", nw.bridge, "up"},
			{"-n", h.ns, "addr", "add", h.ip + "/24", "dev", "eth0"},
			{"-n", h.ns, "link", "set", "eth0", "up"},
			{"-n", h.ns, "link", "set", "lo", "up"},
		} {
			if err := run("ip", args...); err != nil {
				return nil, err
			}
		}
	}
	return nw, nil
}

// iptables runs iptables in h's namespace.
func (h *host) iptables(args ...string) error {
	return run("ip", append([]string{"netns", "exec", h.ns, "iptables", "-w"}, args...)...)
}

// redirect sends h's TCP connections to dst:port through the harness's proxy at
// bridge:proxyPort.
func (n *network) redirect(h *host, dst string, port, proxyPort int) error {
	return h.iptables("-t", "nat", "-A", "OUTPUT", "-d", dst, "-p", "tcp", "--dport", strconv.Itoa(port),
		"-j", "DNAT", "--to-destination", fmt.Sprintf("%s:%d", n.bridgeIP(), proxyPort))
}

// cut drops all traffic between a and b, both ways, including connections
// redirected through the proxy (matched by their original destination) and the
// packets of connections already open.
func (n *network) cut(a, b *host) error {
	for _, p := range [][2]*host{{a, b}, {b, a}} {
		h, peer := p[0], p[1]
		for _, rule := range [][]string{
			{"OUTPUT", "-d", peer.ip},
			{"INPUT", "-s", peer.ip},
			{"OUTPUT", "-m", "conntrack", "--ctorigdst", peer.ip},
			{"INPUT", "-m", "conntrack", "--ctorigdst", peer.ip},
		} {
			if err := h.iptables(append(append([]string{"-A"}, rule...), "-j", "DROP")...); err != nil {
				return err
			}
		}
	}
	return nil
}

// partition cuts every link between hosts of different groups; hosts in no group
// keep all their links (a bridge between the sides).
func (n *network) partition(groups ...[]*host) error {
	for i, g := range groups {
		for _, other := range groups[i+1:] {
			for _, a := range g {
				for _, b := range other {
					if err := n.cut(a, b); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// heal removes every cut.
func (n *network) heal() error {
	var first error
	for _, h := range n.hosts {
		if err := h.iptables("-F"); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// close removes the links, namespaces and bridge.
func (n *network) close() {
	for _, h := range n.hosts {
		_ = run("ip", "link", "del", h.veth)
		_ = run("ip", "netns", "del", h.ns)
	}
	_ = run("ip", "link", "del", n.bridge)
}

package resp

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// infoSections are INFO's own sections, in Redis's order. Those marked default
// are shown by INFO and INFO default; all are shown by INFO all and everything.
// Sections without fields in dynakv (modules, errorstats, latencystats) show only
// their header, plus any fields Config.Info gives them.
var infoSections = []struct {
	name, title string
	dflt        bool
}{
	{"server", "Server", true},
	{"clients", "Clients", true},
	{"memory", "Memory", true},
	{"persistence", "Persistence", true},
	{"stats", "Stats", true},
	{"replication", "Replication", true},
	{"cpu", "CPU", true},
	{"modules", "Modules", true},
	{"errorstats", "Errorstats", true},
	{"commandstats", "Commandstats", false},
	{"latencystats", "Latencystats", false},
	{"cluster", "Cluster", true},
	{"keyspace", "Keyspace", true},
}

// info: INFO [section ...].
func (s *Server) info(c *client, args [][]byte) {
	words := make([]string, 0, len(args))
	for _, a := range args[1:] {
		words = append(words, strings.ToLower(string(a)))
	}
	if len(words) == 0 {
		words = append(words, "default")
	}
	want := map[string]bool{}
	for _, w := range words {
		switch w {
		case "default", "all", "everything":
			for _, sec := range infoSections {
				if sec.dflt || w != "default" {
					want[sec.name] = true
				}
			}
		default:
			want[w] = true
		}
	}
	// Extra fields from the node, grouped by section, in first-seen order.
	extra := map[string][]InfoField{}
	var order []string
	if s.cfg.Info != nil {
		seen := map[[2]string]bool{}
		for _, w := range words {
			for _, f := range s.cfg.Info(w) {
				sec := strings.ToLower(f.Section)
				if seen[[2]string{sec, f.Key}] {
					continue
				}
				seen[[2]string{sec, f.Key}] = true
				if _, ok := extra[sec]; !ok {
					order = append(order, sec)
				}
				extra[sec] = append(extra[sec], f)
			}
		}
	}
	var b infoBuilder
	for _, sec := range infoSections {
		if !want[sec.name] && extra[sec.name] == nil {
			continue
		}
		b.section(sec.title)
		// A node field named like one of the section's own replaces it in
		// place (the node knows the real used_memory, say): no key twice.
		b.over = make(map[string]string, len(extra[sec.name]))
		for _, f := range extra[sec.name] {
			b.over[f.Key] = f.Value
		}
		if want[sec.name] {
			s.infoFields(&b, sec.name)
		}
		for _, f := range extra[sec.name] {
			if _, ok := b.over[f.Key]; ok {
				b.field(f.Key, f.Value)
			}
		}
		b.over = nil
		delete(extra, sec.name)
	}
	for _, sec := range order {
		if fields, ok := extra[sec]; ok {
			b.section(strings.ToUpper(sec[:1]) + sec[1:])
			for _, f := range fields {
				b.field(f.Key, f.Value)
			}
		}
	}
	c.w.Verbatim(b.b)
}

// infoBuilder writes INFO's text: "# Title\r\n", "key:value\r\n" lines, a blank
// line between sections. A field whose key is in over is written with over's
// value instead, once: the key is then taken out of over.
type infoBuilder struct {
	b    []byte
	over map[string]string
}

func (b *infoBuilder) section(title string) {
	if len(b.b) > 0 {
		b.b = append(b.b, "\r\n"...)
	}
	b.b = append(b.b, "# "...)
	b.b = append(b.b, title...)
	b.b = append(b.b, "\r\n"...)
}

func (b *infoBuilder) field(key, value string) {
	if v, ok := b.over[key]; ok {
		value = v
		delete(b.over, key)
	}
	b.b = append(b.b, oneLine(key)...)
	b.b = append(b.b, ':')
	b.b = append(b.b, oneLine(value)...)
	b.b = append(b.b, "\r\n"...)
}

func (b *infoBuilder) int(key string, v int64) { b.field(key, strconv.FormatInt(v, 10)) }

func oneLine(s string) string {
	if strings.ContainsAny(s, "\r\n") {
		return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
	}
	return s
}

func (s *Server) infoFields(b *infoBuilder, section string) {
	now := s.cfg.Now()
	switch section {
	case "server":
		_, port := s.hostPort()
		exe, _ := os.Executable()
		uptime := int64(now.Sub(s.started).Seconds())
		b.field("redis_version", redisVersion)
		b.field("redis_git_sha1", "00000000")
		b.field("redis_git_dirty", "0")
		b.field("redis_build_id", "0")
		b.field("redis_mode", "standalone")
		b.field("os", runtime.GOOS+" "+runtime.GOARCH)
		b.int("arch_bits", strconv.IntSize)
		b.field("multiplexing_api", "go")
		b.field("go_version", runtime.Version())
		b.int("process_id", int64(os.Getpid()))
		b.field("process_supervised", "no")
		b.field("run_id", s.runID)
		b.field("tcp_port", port)
		b.int("server_time_usec", now.UnixMicro())
		b.int("uptime_in_seconds", uptime)
		b.int("uptime_in_days", uptime/86400)
		b.field("hz", "10")
		b.field("configured_hz", "10")
		b.field("executable", exe)
		b.field("config_file", "")
		b.field("io_threads_active", "0")
		b.field("dynakv_version", s.cfg.Version)
		b.field("dynakv_node", s.cfg.NodeName)
	case "clients":
		b.int("connected_clients", int64(s.ns.Len()))
		b.field("cluster_connections", "0")
		b.int("maxclients", int64(s.ns.MaxClients()))
		b.field("client_recent_max_input_buffer", "0")
		// The most reply bytes the node held for one client since the last
		// INFO that showed this field (Redis: over the last few seconds).
		b.int("client_recent_max_output_buffer", s.stats.maxOutput.Swap(0))
		b.field("blocked_clients", "0")
		b.field("tracking_clients", "0")
		b.field("clients_in_timeout_table", "0")
	case "memory":
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		b.int("used_memory", int64(m.HeapAlloc))
		b.field("used_memory_human", BytesToHuman(m.HeapAlloc))
		b.int("used_memory_rss", int64(m.Sys))
		b.field("used_memory_rss_human", BytesToHuman(m.Sys))
		b.int("used_memory_peak", int64(m.HeapSys))
		b.field("used_memory_peak_human", BytesToHuman(m.HeapSys))
		b.int("total_system_memory", 0)
		b.field("maxmemory", "0")
		b.field("maxmemory_human", "0B")
		b.field("maxmemory_policy", "noeviction")
		b.field("mem_allocator", "go")
	case "persistence":
		b.field("loading", "0")
		b.field("async_loading", "0")
		b.field("rdb_changes_since_last_save", "0")
		b.field("rdb_bgsave_in_progress", "0")
		b.int("rdb_last_save_time", s.started.Unix())
		b.field("rdb_last_bgsave_status", "ok")
		b.field("aof_enabled", "0")
		b.field("aof_rewrite_in_progress", "0")
	case "stats":
		ps := s.px.Stats()
		b.int("total_connections_received", s.stats.conns.Load())
		b.int("total_commands_processed", s.stats.commands.Load())
		b.field("instantaneous_ops_per_sec", "0")
		b.int("total_net_input_bytes", s.stats.netIn.Load())
		b.int("total_net_output_bytes", s.stats.netOut.Load())
		b.field("instantaneous_input_kbps", "0.00")
		b.field("instantaneous_output_kbps", "0.00")
		b.int("rejected_connections", s.stats.rejected.Load())
		b.field("expired_keys", "0")
		b.field("evicted_keys", "0")
		b.int("keyspace_hits", ps.Hits-s.stats.hitsBase.Load())
		b.int("keyspace_misses", ps.Misses-s.stats.missesBase.Load())
		b.field("pubsub_channels", "0")
		b.field("pubsub_patterns", "0")
		b.int("total_error_replies", s.stats.errorReplies.Load())
		b.field("unexpected_error_replies", "0")
		s.loopInfo(b)
	case "replication":
		b.field("role", "master")
		b.field("connected_slaves", "0")
		b.field("master_failover_state", "no-failover")
		b.field("master_replid", s.runID)
		b.field("master_replid2", strings.Repeat("0", 40))
		b.field("master_repl_offset", "0")
		b.field("second_repl_offset", "-1")
		b.field("repl_backlog_active", "0")
		b.field("repl_backlog_size", "0")
		b.field("repl_backlog_first_byte_offset", "0")
		b.field("repl_backlog_histlen", "0")
	case "cpu":
		cpuStats(b)
	case "commandstats":
		s.commandStats(b)
	case "cluster":
		b.field("cluster_enabled", "0")
	case "keyspace":
		n, err := s.px.DBSize(s.ctx)
		if err != nil {
			s.cfg.Logger.Warn("INFO keyspace: counting keys", "err", err)
			return
		}
		if n > 0 {
			b.field("db0", fmt.Sprintf("keys=%d,expires=0,avg_ttl=0", n))
		}
	}
}

// BytesToHuman formats n as Redis's bytesToHuman (INFO's *_human fields): "512B", "1.50K", "2.00M", ...
func BytesToHuman(n uint64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatUint(n, 10) + "B"
	}
	d := float64(n)
	for _, suffix := range []string{"K", "M", "G", "T", "P"} {
		d /= unit
		if d < unit || suffix == "P" {
			return strconv.FormatFloat(d, 'f', 2, 64) + suffix
		}
	}
	return ""
}

package resp

import (
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/dynakv/dynakv/internal/num"
	"github.com/dynakv/dynakv/proxy"
)

// configParam is one parameter CONFIG GET shows. Parameters dynakv has no use for
// but clients and tools ask about (redis-benchmark reads save and appendonly)
// report Redis's defaults; the settable ones among them accept a valid value and
// store it without effect, so scripts that tune Redis keep working. requirepass is
// not shown. The tunable ones (maxmemory, maxmemory-policy, maxmemory-samples) belong to the node
// when Config.Tunables is set: read from it, and set through it at once.
type configParam struct {
	name    string
	value   func(s *Server) string // the default value
	kind    paramKind
	choices []string // kindEnum
	min     int64    // kindInt
	set     func(s *Server, v string)
	tunable bool // backed by Config.Tunables when it is set
}

type paramKind uint8

const (
	kindImmutable paramKind = iota
	kindString
	kindBool
	kindInt
	kindEnum
	kindMemory
)

func fixed(v string) func(*Server) string { return func(*Server) string { return v } }

var configParams = []configParam{
	{name: "appendfsync", value: fixed("everysec"), kind: kindEnum, choices: []string{"always", "everysec", "no"}},
	{name: "appendonly", value: fixed("no"), kind: kindBool},
	{name: "bind", value: func(s *Server) string { h, _ := s.hostPort(); return h }},
	{name: "client-query-buffer-limit", value: fixed(strconv.Itoa(queryBufLimit))},
	{name: "cluster-enabled", value: fixed("no")},
	{name: "daemonize", value: fixed("no")},
	{name: "databases", value: fixed("1")},
	{name: "hz", value: fixed("10"), kind: kindInt, min: 1},
	{name: "io-threads", value: fixed("1")},
	{name: "lazyfree-lazy-user-flush", value: fixed("no"), kind: kindBool},
	{name: "latency-tracking", value: fixed("yes"), kind: kindBool},
	{name: "loglevel", value: fixed("notice"), kind: kindEnum, choices: []string{"debug", "verbose", "notice", "warning", "nothing"}},
	{name: "maxclients", value: func(s *Server) string { return strconv.Itoa(s.ns.MaxClients()) }, kind: kindInt, min: 1,
		set: func(s *Server, v string) { n, _ := strconv.Atoi(v); s.ns.SetMaxClients(n) }},
	{name: "maxmemory", value: fixed("0"), kind: kindMemory, tunable: true},
	{name: "maxmemory-policy", value: fixed("noeviction"), kind: kindEnum, choices: []string{"volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl", "allkeys-lru", "allkeys-lfu", "allkeys-random", "noeviction"}, tunable: true},
	{name: "maxmemory-samples", value: fixed("5"), kind: kindInt, min: 1, tunable: true},
	{name: "notify-keyspace-events", value: fixed(""), kind: kindString},
	{name: "port", value: func(s *Server) string { _, p := s.hostPort(); return p }},
	{name: "protected-mode", value: fixed("no"), kind: kindBool},
	{name: "proto-max-bulk-len", value: func(s *Server) string { return strconv.FormatInt(s.cfg.ProtoMaxBulkLen, 10) }},
	{name: "save", value: fixed(""), kind: kindString},
	{name: "slowlog-log-slower-than", value: fixed("10000"), kind: kindInt, min: -1},
	{name: "slowlog-max-len", value: fixed("128"), kind: kindInt, min: 0},
	{name: "tcp-keepalive", value: fixed("300"), kind: kindInt, min: 0},
	{name: "timeout", value: fixed("0"), kind: kindInt, min: 0},
}

// configStore holds the values CONFIG SET stored.
type configStore struct {
	mu  sync.Mutex
	set map[string]string
}

func (c *configStore) init() { c.set = make(map[string]string) }

func (c *configStore) get(s *Server, p *configParam) string {
	if p.tunable && s.cfg.Tunables != nil {
		if v, ok := s.cfg.Tunables.Get(p.name); ok {
			return v
		}
	}
	c.mu.Lock()
	v, ok := c.set[p.name]
	c.mu.Unlock()
	if ok {
		return v
	}
	return p.value(s)
}

func findParam(name string) *configParam {
	for i := range configParams {
		if configParams[i].name == name {
			return &configParams[i]
		}
	}
	return nil
}

func (s *Server) hostPort() (string, string) {
	addr := s.ns.Addr()
	if addr == nil {
		return "", ""
	}
	h, p, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String(), ""
	}
	return h, p
}

// configGet: CONFIG GET pattern [pattern ...], glob patterns matched without
// case; a map in RESP3, a flat array in RESP2.
func (s *Server) configGet(c *client, args [][]byte) {
	var hits []*configParam
	for _, a := range args[2:] {
		pat := strings.ToLower(string(a))
		for i := range configParams {
			p := &configParams[i]
			if !slices.Contains(hits, p) && proxy.Match(pat, []byte(p.name)) {
				hits = append(hits, p)
			}
		}
	}
	c.w.Map(len(hits))
	for _, p := range hits {
		c.w.BulkString(p.name)
		c.w.BulkString(s.config.get(s, p))
	}
}

// configSet: CONFIG SET parameter value [parameter value ...]. All are checked
// before any is applied, with Redis 7.2's error texts.
func (s *Server) configSet(c *client, args [][]byte) {
	if len(args)%2 != 0 {
		c.w.errorLine(errSyntax)
		return
	}
	type change struct {
		p *configParam
		v string
	}
	var changes []change
	for i := 2; i < len(args); i += 2 {
		name := strings.ToLower(string(args[i]))
		p := findParam(name)
		if p == nil {
			c.w.Error("ERR Unknown option or number of arguments for CONFIG SET - '" + string(cstr(args[i])) + "'")
			return
		}
		for _, ch := range changes {
			if ch.p == p {
				c.w.Error("ERR CONFIG SET failed (possibly related to argument '" + string(cstr(args[i])) + "') - duplicate parameter")
				return
			}
		}
		v := string(args[i+1])
		if msg := p.check(&v); msg != "" {
			c.w.Error("ERR CONFIG SET failed (possibly related to argument '" + string(cstr(args[i])) + "') - " + msg)
			return
		}
		changes = append(changes, change{p, v})
	}
	// The node's parameters first: one it refuses undoes those set before it,
	// so that a refused CONFIG SET changes nothing.
	var undo []change
	for _, ch := range changes {
		if !ch.p.tunable || s.cfg.Tunables == nil {
			continue
		}
		old := s.config.get(s, ch.p)
		if err := s.cfg.Tunables.Set(ch.p.name, ch.v); err != nil {
			for _, u := range slices.Backward(undo) {
				_ = s.cfg.Tunables.Set(u.p.name, u.v)
			}
			c.w.Error("ERR CONFIG SET failed (possibly related to argument '" + ch.p.name + "') - " + oneLine(err.Error()))
			return
		}
		undo = append(undo, change{ch.p, old})
	}
	s.config.mu.Lock()
	for _, ch := range changes {
		s.config.set[ch.p.name] = ch.v
	}
	s.config.mu.Unlock()
	for _, ch := range changes {
		if ch.p.set != nil {
			ch.p.set(s, ch.v)
		}
	}
	c.w.OK()
}

// check validates (and normalizes) a new value; it returns Redis's complaint.
func (p *configParam) check(v *string) string {
	switch p.kind {
	case kindImmutable:
		return "can't set immutable config"
	case kindBool:
		switch strings.ToLower(*v) {
		case "yes", "no":
			*v = strings.ToLower(*v)
			return ""
		}
		return "argument must be 'yes' or 'no'"
	case kindInt:
		n, err := strconv.ParseInt(*v, 10, 64)
		if err != nil {
			return "argument couldn't be parsed into an integer"
		}
		if n < p.min || n > 1<<31-1 {
			return "argument must be between " + strconv.FormatInt(p.min, 10) + " and 2147483647 inclusive"
		}
		*v = strconv.FormatInt(n, 10)
	case kindEnum:
		for _, ch := range p.choices {
			if strings.EqualFold(ch, *v) {
				*v = ch
				return ""
			}
		}
		return "argument(s) must be one of the following: " + strings.Join(p.choices, ", ")
	case kindMemory:
		n, ok := num.ParseMemory(*v)
		if !ok {
			return "argument must be a memory value"
		}
		*v = strconv.FormatUint(n, 10)
	}
	return ""
}

func (s *Server) configResetStat(c *client, _ [][]byte) {
	st := &s.stats
	st.conns.Store(0)
	st.rejected.Store(0)
	st.commands.Store(0)
	st.errorReplies.Store(0)
	st.netIn.Store(0)
	st.netOut.Store(0)
	ps := s.px.Stats()
	st.hitsBase.Store(ps.Hits)
	st.missesBase.Store(ps.Misses)
	s.cmds.eachCommand(func(cmd *command) { cmd.stats.reset() })
	c.w.OK()
}

func (s *Server) configRewrite(c *client, _ [][]byte) {
	c.w.Error("ERR The server is running without a config file")
}

func (s *Server) configHelp(c *client, _ [][]byte) {
	help(c, "CONFIG",
		"GET <pattern>",
		"    Return parameters matching the glob-like <pattern> and their values.",
		"SET <directive> <value>",
		"    Set the configuration <directive> to <value>.",
		"RESETSTAT",
		"    Reset statistics reported by the INFO command.",
		"REWRITE",
		"    Rewrite the configuration file.",
	)
}

package resp

import (
	"fmt"
	"strings"

	"github.com/dynakv/dynakv/internal/num"
	"github.com/dynakv/dynakv/proxy"
)

// Cluster is what the operator commands (DPREFLIST, DCLUSTER) need from the node.
// It may be nil: those commands then answer an error.
type Cluster interface {
	// PreferenceList returns the names of key's N replicas in preference order.
	PreferenceList(key []byte) []string
	// PreferenceListZones returns PreferenceList(key) and zones[i], the zone of
	// names[i] ("" for none).
	PreferenceListZones(key []byte) (names, zones []string)
	// Members describes the ring members, one line each.
	Members() []string
	// Remove takes a (dead) member out of the ring.
	Remove(name string) error
	// Leave starts this node's graceful leave: it hands its partitions off, then
	// leaves the ring.
	Leave() error
}

var (
	errNoCluster   = errLine("ERR this node has no cluster")
	errQuorumValue = errLine("ERR quorum must be a positive integer")
)

// dget: DGET key [R n] [LOCAL] -> *2: the causal context ("" when the key was never
// written), then an array of every live sibling value. R overrides the read quorum;
// LOCAL reads only this node's replica. The reply is an array in RESP3 too.
func (s *Server) dget(c *client, args [][]byte) {
	op := proxy.Op{Kind: proxy.OpDGet, Key: args[1]}
	for i := 2; i < len(args); i++ {
		switch {
		case eqFold(cstr(args[i]), "local"):
			op.Local = true
		case eqFold(cstr(args[i]), "r") && i+1 < len(args):
			if op.R = quorumArg(c, args[i+1]); op.R == 0 {
				return
			}
			i++
		default:
			c.w.errorLine(errSyntax)
			return
		}
	}
	res, ok := s.do(c, op)
	if !ok {
		return
	}
	c.w.Array(2)
	c.w.BulkString(res.Context)
	c.w.Array(len(res.Values))
	for _, v := range res.Values {
		c.w.Bulk(v)
	}
}

// quorumArg parses an R or W override, a positive integer (clamped to N later); on
// a bad one it answers the error and returns 0.
func quorumArg(c *client, b []byte) int {
	n, ok := num.ParseInt(b)
	if !ok || n < 1 || n > 1<<16 {
		c.w.errorLine(errQuorumValue)
		return 0
	}
	return int(n)
}

// dput: DPUT key context value [EX seconds | PX milliseconds] [W n] -> the new
// context. The write supersedes exactly the siblings the context covers; "" adds a
// sibling. W overrides the write quorum.
func (s *Server) dput(c *client, args [][]byte) {
	op := proxy.Op{Kind: proxy.OpDPut, Key: args[1], Context: string(args[2]), Value: args[3]}
	expirySet := false
	for opts := args[4:]; len(opts) > 0; opts = opts[2:] {
		if len(opts) < 2 {
			c.w.errorLine(errSyntax)
			return
		}
		switch name := cstr(opts[0]); {
		case !expirySet && (eqFold(name, "ex") || eqFold(name, "px")):
			flags := optEX
			if eqFold(name, "px") {
				flags = optPX
			}
			when, errl := s.expireAt(opts[1], flags, "dput")
			if errl != nil {
				c.w.errorLine(errl)
				return
			}
			op.Expiry, expirySet = when, true
		case op.W == 0 && eqFold(name, "w"):
			if op.W = quorumArg(c, opts[1]); op.W == 0 {
				return
			}
		default:
			c.w.errorLine(errSyntax)
			return
		}
	}
	s.writeContext(c, op)
}

// writeContext runs a DPUT or DDEL and answers the new context.
func (s *Server) writeContext(c *client, op proxy.Op) {
	if res, ok := s.do(c, op); ok {
		c.w.BulkString(res.Context)
	}
}

// ddel: DDEL key context [W n] -> the new context (a tombstone written with
// context).
func (s *Server) ddel(c *client, args [][]byte) {
	op := proxy.Op{Kind: proxy.OpDDel, Key: args[1], Context: string(args[2])}
	switch opts := args[3:]; {
	case len(opts) == 0:
	case len(opts) == 2 && eqFold(cstr(opts[0]), "w"):
		if op.W = quorumArg(c, opts[1]); op.W == 0 {
			return
		}
	default:
		c.w.errorLine(errSyntax)
		return
	}
	s.writeContext(c, op)
}

// dpreflist: DPREFLIST key [WITHZONES] -> the names of the key's N replicas, in
// preference order; WITHZONES follows each name with its zone ("" for none) in one
// flat array, like ZRANGE's WITHSCORES in RESP2, in RESP3 too.
func (s *Server) dpreflist(c *client, args [][]byte) {
	withZones := len(args) == 3 && eqFold(cstr(args[2]), "withzones")
	if len(args) > 2 && !withZones {
		c.w.errorLine(errSyntax)
		return
	}
	if s.cfg.Cluster == nil {
		c.w.errorLine(errNoCluster)
		return
	}
	if !withZones {
		names := s.cfg.Cluster.PreferenceList(args[1])
		c.w.Array(len(names))
		for _, n := range names {
			c.w.BulkString(n)
		}
		return
	}
	names, zones := s.cfg.Cluster.PreferenceListZones(args[1])
	c.w.Array(2 * len(names))
	for i, n := range names {
		zone := ""
		if i < len(zones) {
			zone = zones[i]
		}
		c.w.BulkString(n)
		c.w.BulkString(zone)
	}
}

// dcluster: DCLUSTER MEMBERS | DCLUSTER REMOVE name | DCLUSTER LEAVE.
func (s *Server) dcluster(c *client, args [][]byte) {
	if s.cfg.Cluster == nil {
		c.w.errorLine(errNoCluster)
		return
	}
	switch sub := cstr(args[1]); {
	case eqFold(sub, "members") && len(args) == 2:
		lines := s.cfg.Cluster.Members()
		c.w.Array(len(lines))
		for _, l := range lines {
			c.w.BulkString(l)
		}
	case eqFold(sub, "remove") && len(args) == 3:
		if err := s.cfg.Cluster.Remove(string(args[2])); err != nil {
			c.w.Error("ERR " + oneLine(err.Error()))
			return
		}
		c.w.OK()
	case eqFold(sub, "leave") && len(args) == 2:
		if err := s.cfg.Cluster.Leave(); err != nil {
			c.w.Error("ERR " + oneLine(err.Error()))
			return
		}
		c.w.OK()
	case eqFold(sub, "members"), eqFold(sub, "remove"), eqFold(sub, "leave"):
		c.w.Error((fmt.Sprintf("ERR wrong number of arguments for 'dcluster|%s' command", strings.ToLower(string(sub)))))
	default:
		c.w.Error((fmt.Sprintf("ERR unknown subcommand '%s'. Try DCLUSTER MEMBERS, DCLUSTER REMOVE name or DCLUSTER LEAVE.", oneLine(string(args[1])))))
	}
}

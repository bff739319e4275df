package resp

import (
	"crypto/subtle"
	"math"
	"strconv"
	"time"

	"github.com/dynakv/dynakv/internal/num"
)

// redisVersion is the Redis version dynakv reports to clients (HELLO, INFO).
const redisVersion = "7.2.0"

func (s *Server) ping(c *client, args [][]byte) {
	switch len(args) {
	case 1:
		c.w.Simple("PONG")
	case 2:
		c.w.Bulk(args[1])
	default:
		c.w.errorLine(s.cmds.byName["ping"].arityErr)
	}
}

func (s *Server) echo(c *client, args [][]byte) { c.w.Bulk(args[1]) }

func (s *Server) quit(c *client, _ [][]byte) {
	c.w.OK()
	c.closing = true
}

// checkAuth checks credentials for the only user, "default". Without a
// password, the default user takes any password, as Redis's "nopass" user.
func (s *Server) checkAuth(user, pass []byte) bool {
	if string(user) != "default" {
		return false
	}
	if s.cfg.RequirePass == "" {
		return true
	}
	return subtle.ConstantTimeCompare(pass, []byte(s.cfg.RequirePass)) == 1
}

// auth: AUTH password | AUTH username password. A failed AUTH leaves an
// authenticated connection authenticated, as in Redis.
func (s *Server) auth(c *client, args [][]byte) {
	if len(args) > 3 {
		c.w.errorLine(errSyntax)
		return
	}
	user, pass := []byte("default"), args[1]
	if len(args) == 2 {
		if s.cfg.RequirePass == "" {
			c.w.errorLine(errNoPassword)
			return
		}
	} else {
		user, pass = args[1], args[2]
	}
	if !s.checkAuth(user, pass) {
		c.w.errorLine(errWrongPass)
		return
	}
	c.authed = true
	c.w.OK()
}

// hello: HELLO [protover [AUTH username password] [SETNAME clientname]].
func (s *Server) hello(c *client, args [][]byte) {
	ver, next := int64(0), 1
	if len(args) >= 2 {
		v, ok := num.ParseInt(args[1])
		if !ok {
			c.w.errorLine(errHelloProto)
			return
		}
		if v < 2 || v > 3 {
			c.w.errorLine(errNoProto)
			return
		}
		ver, next = v, 2
	}
	var user, pass, name []byte
	hasAuth, hasName := false, false
	for j := next; j < len(args); j++ {
		more := len(args) - 1 - j
		opt := cstr(args[j])
		switch {
		case eqFold(opt, "auth") && more >= 2:
			user, pass, hasAuth = args[j+1], args[j+2], true
			j += 2
		case eqFold(opt, "setname") && more >= 1:
			name, hasName = args[j+1], true
			if !validName(name) {
				c.w.errorLine(errClientName)
				return
			}
			j++
		default:
			c.w.Error("ERR Syntax error in HELLO option '" + string(opt) + "'")
			return
		}
	}
	if hasAuth {
		if !s.checkAuth(user, pass) {
			c.w.errorLine(errWrongPass)
			return
		}
		c.authed = true
	}
	if !c.authed {
		c.w.errorLine(errHelloNoAuth)
		return
	}
	if hasName {
		c.setName(name)
	}
	if ver != 0 {
		c.setProto(int(ver))
	}
	c.w.Map(7)
	c.w.BulkString("server")
	c.w.BulkString("redis")
	c.w.BulkString("version")
	c.w.BulkString(redisVersion)
	c.w.BulkString("proto")
	c.w.Int(int64(c.w.proto))
	c.w.BulkString("id")
	c.w.Int(c.id)
	c.w.BulkString("mode")
	c.w.BulkString("standalone")
	c.w.BulkString("role")
	c.w.BulkString("master")
	c.w.BulkString("modules")
	c.w.Array(0)
}

// selectDB: only database 0 exists.
func (s *Server) selectDB(c *client, args [][]byte) {
	id, ok := num.ParseInt(args[1])
	if !ok {
		c.w.errorLine(errNotInteger)
		return
	}
	if id < math.MinInt32 || id > math.MaxInt32 {
		c.w.Error("ERR value is out of range, value must between -2147483648 and 2147483647")
		return
	}
	if id != 0 {
		c.w.errorLine(errDBIndex)
		return
	}
	c.w.OK()
}

func (s *Server) time(c *client, _ [][]byte) {
	now := s.cfg.Now()
	c.w.Array(2)
	c.w.BulkInt(now.Unix())
	c.w.BulkInt(int64(now.Nanosecond() / 1000))
}

// validName is Redis's validateClientName: printable ASCII without spaces.
func validName(name []byte) bool {
	for _, b := range name {
		if b < '!' || b > '~' {
			return false
		}
	}
	return true
}

func (c *client) setName(name []byte) {
	c.mu.Lock()
	c.name = string(name)
	c.mu.Unlock()
}

func (s *Server) clientSetName(c *client, args [][]byte) {
	if !validName(args[2]) {
		c.w.errorLine(errClientName)
		return
	}
	c.setName(args[2])
	c.w.OK()
}

func (s *Server) clientGetName(c *client, _ [][]byte) {
	c.mu.Lock()
	name := c.name
	c.mu.Unlock()
	if name == "" {
		c.w.Null()
		return
	}
	c.w.BulkString(name)
}

// clientSetInfo: CLIENT SETINFO LIB-NAME|LIB-VER value.
func (s *Server) clientSetInfo(c *client, args [][]byte) {
	attr, val := cstr(args[2]), cstr(args[3])
	lib := eqFold(attr, "lib-name")
	if !lib && !eqFold(attr, "lib-ver") {
		c.w.Error("ERR Unrecognized option '" + string(attr) + "'")
		return
	}
	if !validName(val) {
		c.w.Error("ERR " + string(attr) + " cannot contain spaces, newlines or special characters.")
		return
	}
	c.mu.Lock()
	if lib {
		c.libName = string(val)
	} else {
		c.libVer = string(val)
	}
	c.mu.Unlock()
	c.w.OK()
}

func (s *Server) clientID(c *client, _ [][]byte) { c.w.Int(c.id) }

func (s *Server) clientInfo(c *client, _ [][]byte) {
	c.w.Verbatim(append(s.clientLine(nil, c), '\n'))
}

// clientList: CLIENT LIST [TYPE normal|master|replica|pubsub] [ID id ...].
func (s *Server) clientList(c *client, args [][]byte) {
	var ids []int64
	normal := true
	switch {
	case len(args) == 4 && eqFold(cstr(args[2]), "type"):
		switch t := cstr(args[3]); {
		case eqFold(t, "normal"):
		case eqFold(t, "master"), eqFold(t, "replica"), eqFold(t, "slave"), eqFold(t, "pubsub"):
			normal = false
		default:
			c.w.Error("ERR Unknown client type '" + string(t) + "'")
			return
		}
	case len(args) > 3 && eqFold(cstr(args[2]), "id"):
		for _, a := range args[3:] {
			id, ok := num.ParseInt(a)
			if !ok {
				c.w.Error("ERR Invalid client ID")
				return
			}
			ids = append(ids, id)
		}
	case len(args) != 2:
		c.w.errorLine(errSyntax)
		return
	}
	var out []byte
	if ids != nil {
		for _, id := range ids {
			if cl, ok := s.ns.Get(id); ok {
				out = append(s.clientLine(out, cl), '\n')
			}
		}
	} else if normal {
		for _, cl := range s.ns.Conns() {
			out = append(s.clientLine(out, cl), '\n')
		}
	}
	c.w.Verbatim(out)
}

// clientLine appends cl's CLIENT LIST line (without the newline), with Redis
// 7.2's fields; those dynakv has no counterpart for are zero.
func (s *Server) clientLine(b []byte, cl *client) []byte {
	now := time.Now()
	cl.mu.Lock()
	name, libName, libVer := cl.name, cl.libName, cl.libVer
	cl.mu.Unlock()
	cmd := "NULL"
	if lc := cl.lastCmd.Load(); lc != nil {
		cmd = lc.name
	}
	idle := now.Sub(time.Unix(0, cl.lastAt.Load()))
	b = append(b, "id="...)
	b = strconv.AppendInt(b, cl.id, 10)
	b = append(b, " addr="...)
	b = append(b, cl.addr...)
	b = append(b, " laddr="...)
	b = append(b, cl.laddr...)
	b = append(b, " fd=0 name="...)
	b = append(b, name...)
	b = append(b, " age="...)
	b = strconv.AppendInt(b, int64(now.Sub(cl.created)/time.Second), 10)
	b = append(b, " idle="...)
	b = strconv.AppendInt(b, int64(max(idle, 0)/time.Second), 10)
	b = append(b, " flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd="...)
	b = append(b, cmd...)
	b = append(b, " user=default redir=-1 resp="...)
	b = strconv.AppendInt(b, int64(cl.proto.Load()), 10)
	b = append(b, " lib-name="...)
	b = append(b, libName...)
	b = append(b, " lib-ver="...)
	b = append(b, libVer...)
	return b
}

func (s *Server) clientHelp(c *client, _ [][]byte) {
	help(c, "CLIENT",
		"GETNAME",
		"    Return the name of the current connection.",
		"ID",
		"    Return the ID of the current connection.",
		"INFO",
		"    Return information about the current client connection.",
		"LIST [TYPE <normal|master|replica|pubsub>] [ID <id> [<id> ...]]",
		"    Return information about client connections.",
		"SETINFO <option> <value>",
		"    Set client meta attr. Options are:",
		"    * LIB-NAME: the client lib name.",
		"    * LIB-VER: the client lib version.",
		"SETNAME <name>",
		"    Assign the name <name> to the current connection.",
	)
}

// help writes a HELP reply as Redis's addReplyHelp does.
func help(c *client, name string, lines ...string) {
	c.w.Array(len(lines) + 3)
	c.w.Simple(name + " <subcommand> [<arg> [value] [opt] ...]. Subcommands are:")
	for _, l := range lines {
		c.w.Simple(l)
	}
	c.w.Simple("HELP")
	c.w.Simple("    Print this help.")
}

// COMMAND, its subcommands, and the shape of a command's COMMAND INFO entry.

func (s *Server) commandAll(c *client, _ [][]byte) {
	c.w.Array(len(s.cmds.list))
	for _, cmd := range s.cmds.list {
		s.commandEntry(c, cmd)
	}
}

// commandEntry writes cmd's COMMAND INFO reply: name, arity, flags, first key,
// last key, step, ACL categories, tips, key specifications, subcommands.
func (s *Server) commandEntry(c *client, cmd *command) {
	c.w.Array(10)
	c.w.BulkString(cmd.name)
	c.w.Int(int64(cmd.arity))
	c.w.Set(len(cmd.flags))
	for _, f := range cmd.flags {
		c.w.Simple(f)
	}
	c.w.Int(int64(cmd.first))
	c.w.Int(int64(cmd.last))
	c.w.Int(int64(cmd.step))
	c.w.Set(len(cmd.acl))
	for _, a := range cmd.acl {
		c.w.Simple(a)
	}
	c.w.Set(0) // tips
	c.w.Array(0)
	c.w.Array(len(cmd.subs))
	for _, sub := range cmd.subs {
		s.commandEntry(c, sub)
	}
}

func (s *Server) commandCount(c *client, _ [][]byte) { c.w.Int(int64(len(s.cmds.list))) }

// commandInfo: COMMAND INFO [name ...]; unknown names answer null.
func (s *Server) commandInfo(c *client, args [][]byte) {
	if len(args) == 2 {
		s.commandAll(c, args)
		return
	}
	c.w.Array(len(args) - 2)
	for _, name := range args[2:] {
		if cmd := s.cmds.find(name); cmd != nil {
			s.commandEntry(c, cmd)
		} else {
			c.w.Null()
		}
	}
}

// commandDocs: COMMAND DOCS [name ...]: a map of name to its summary, since and
// group (redis-cli 7 asks for it at start for its hints).
func (s *Server) commandDocs(c *client, args [][]byte) {
	var cmds []*command
	if len(args) == 2 {
		cmds = s.cmds.list
	} else {
		for _, name := range args[2:] {
			if cmd := s.cmds.find(name); cmd != nil {
				cmds = append(cmds, cmd)
			}
		}
	}
	c.w.Map(len(cmds))
	for _, cmd := range cmds {
		s.commandDoc(c, cmd)
	}
}

func (s *Server) commandDoc(c *client, cmd *command) {
	c.w.BulkString(cmd.name)
	n := 3
	if len(cmd.subs) > 0 {
		n++
	}
	c.w.Map(n)
	c.w.BulkString("summary")
	c.w.BulkString(cmd.summary)
	c.w.BulkString("since")
	c.w.BulkString("1.0.0")
	c.w.BulkString("group")
	c.w.BulkString(cmd.group)
	if len(cmd.subs) > 0 {
		c.w.BulkString("subcommands")
		c.w.Map(len(cmd.subs))
		for _, sub := range cmd.subs {
			s.commandDoc(c, sub)
		}
	}
}

func (s *Server) commandList(c *client, args [][]byte) {
	if len(args) != 2 {
		// FILTERBY is not supported: list nothing rather than everything.
		c.w.Array(0)
		return
	}
	c.w.Array(len(s.cmds.list))
	for _, cmd := range s.cmds.list {
		c.w.BulkString(cmd.name)
	}
}

// commandGetKeys: COMMAND GETKEYS command arg [arg ...], from the key positions.
func (s *Server) commandGetKeys(c *client, args [][]byte) {
	cmd := s.cmds.lookup(args[2])
	if cmd == nil {
		c.w.Error("ERR Invalid command specified")
		return
	}
	argv := args[2:]
	if cmd.subs != nil && len(argv) >= 2 {
		if sub := cmd.sub(argv[1]); sub != nil {
			cmd = sub
		}
	}
	if !cmd.arityOK(len(argv)) {
		c.w.Error("ERR Invalid number of arguments specified for command")
		return
	}
	if cmd.first == 0 {
		c.w.Error("ERR The command has no key arguments")
		return
	}
	last := cmd.last
	if last < 0 {
		last += len(argv)
	}
	var keys [][]byte
	for i := cmd.first; i <= last && i < len(argv); i += cmd.step {
		keys = append(keys, argv[i])
	}
	c.w.Array(len(keys))
	for _, k := range keys {
		c.w.Bulk(k)
	}
}

func (s *Server) commandHelp(c *client, _ [][]byte) {
	help(c, "COMMAND",
		"(no subcommand)",
		"    Return details about all commands.",
		"COUNT",
		"    Return the total number of commands in this server.",
		"LIST",
		"    Return a list of all commands in this server.",
		"INFO [<command-name> ...]",
		"    Return details about multiple commands.",
		"    If no command names are given, documentation details for all",
		"    commands are returned.",
		"DOCS [<command-name> ...]",
		"    Return documentation details about multiple commands.",
		"    If no command names are given, documentation details for all",
		"    commands are returned.",
		"GETKEYS <full-command>",
		"    Return the keys from a full command.",
	)
}

package memcache

import "crypto/subtle"

// Authentication, when Config.Password is set, is memcached 1.6's ASCII
// authentication (memcached -Y/--auth-file, proto_text.c try_read_command_asciiauth):
// before anything else a client sends a "set" whose data block is "user password",
//
//	set <any key> <flags> <exptime> <bytes>\r\n<user> <password>\r\n
//
// The key, flags and exptime are ignored and nothing is stored. The user is
// "default" (the user of RESP's AUTH) and the password Config.Password. Replies:
// STORED (the connection is authenticated), "CLIENT_ERROR authentication failure",
// "CLIENT_ERROR bad authentication token format" (not two tokens), "CLIENT_ERROR bad
// command line termination" (the block does not end in "\r\n"). Any other line
// before it is answered "CLIENT_ERROR unauthenticated". dynakv bounds the block to
// maxAuthBlock bytes and closes the connection beyond (memcached waits for it).

const (
	authUser     = "default"
	maxAuthBlock = 1024

	lineUnauthenticated = "CLIENT_ERROR unauthenticated"
	lineAuthFailure     = "CLIENT_ERROR authentication failure"
	lineAuthFormat      = "CLIENT_ERROR bad authentication token format"
	lineAuthTermination = "CLIENT_ERROR bad command line termination"
)

// authBlock is blockFor before authentication: the data block of a "set" line is
// the credentials, read whole when it is at most maxAuthBlock bytes (a larger one
// ends the connection unread).
func authBlock(toks [][]byte) blockSpec {
	if len(toks) < 5 || string(toks[0]) != "set" {
		return blockSpec{}
	}
	size, ok := parseUint32(toks[4])
	if !ok || size > maxAuthBlock {
		return blockSpec{}
	}
	return blockSpec{size: int(size) + 2}
}

// authenticate handles a command of a connection that has not authenticated yet.
// It returns false when the connection must be closed.
func (c *conn) authenticate(cmd command) bool {
	c.noreply, c.failed = false, false
	c.toks, _ = tokenize(c.toks[:0], cmd.line)
	toks := c.toks
	if len(toks) < 5 || string(toks[0]) != "set" {
		c.fail(lineUnauthenticated)
		return true
	}
	size, ok := parseUint32(toks[4])
	if !ok {
		c.fail(lineUnauthenticated)
		return true
	}
	if size > maxAuthBlock {
		c.fail(lineAuthFormat)
		return false
	}
	if !cmd.blockOK {
		c.fail(lineAuthTermination)
		return true
	}
	cred, _ := tokenize(nil, cmd.block)
	if len(cred) < 2 {
		c.fail(lineAuthFormat)
		return true
	}
	c.s.stats.authCmds.Add(1)
	userOK := subtle.ConstantTimeCompare(cred[0], []byte(authUser))
	passOK := subtle.ConstantTimeCompare(cred[1], []byte(c.s.cfg.Password))
	if userOK&passOK != 1 {
		c.s.stats.authErrors.Add(1)
		c.s.cfg.Logger.Warn("memcache: authentication failed", "user", string(cred[0]))
		c.fail(lineAuthFailure)
		return true
	}
	c.authed = true
	c.reply("STORED")
	return true
}

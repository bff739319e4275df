package resp

// dynakv has no transactions: every key is its own Dynamo object, replicated with
// quorums, and there is no point at which several keys change together. Client
// libraries send MULTI, the queued commands and EXEC in one batch and expect none of
// the queued commands to run unless EXEC does. So MULTI is answered with an error
// saying why, and the connection then refuses every command up to its EXEC or
// DISCARD: nothing the client meant as part of a transaction runs on its own, and
// EXEC's EXECABORT tells libraries that read every reply (redis-py, ioredis) that
// the transaction was discarded.
var (
	errMultiUnsupported = errLine("ERR MULTI is not supported by dynakv (Dynamo-style store: no transactions)")
	errInMulti          = errLine("ERR command not run: MULTI is not supported by dynakv; EXEC or DISCARD ends the transaction")
	errExecAbort        = errLine("EXECABORT Transaction discarded because MULTI is not supported by dynakv")
	errExecNoMulti      = errLine("ERR EXEC without MULTI")
	errDiscardNoMulti   = errLine("ERR DISCARD without MULTI")
)

// transaction answers MULTI, EXEC and DISCARD, and refuses commands sent inside a
// MULTI. It reports whether it answered args and the command's name for the
// observer. Arity and authentication are checked as for table commands.
func (s *Server) transaction(c *client, args [][]byte) (string, bool) {
	var name string
	switch {
	case eqFold(args[0], "multi"):
		name = "multi"
	case eqFold(args[0], "exec"):
		name = "exec"
	case eqFold(args[0], "discard"):
		name = "discard"
	case c.inMulti && !eqFold(args[0], "quit"):
		c.w.errorLine(errInMulti)
		return "unknown", true
	default:
		return "", false
	}
	switch {
	case len(args) != 1:
		c.w.Error("ERR wrong number of arguments for '" + name + "' command")
	case !c.authed:
		c.w.errorLine(errNoAuth)
	case name == "multi":
		c.inMulti = true
		c.w.errorLine(errMultiUnsupported)
	case !c.inMulti && name == "exec":
		c.w.errorLine(errExecNoMulti)
	case !c.inMulti:
		c.w.errorLine(errDiscardNoMulti)
	case name == "exec":
		c.inMulti = false
		c.w.errorLine(errExecAbort)
	default:
		c.inMulti = false
		c.w.OK()
	}
	return name, true
}

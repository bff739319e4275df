package resp

// functionFlush answers FUNCTION FLUSH [ASYNC|SYNC]. dynakv has no Functions
// (no scripting), so there is never a library to delete: flushing them is done
// as soon as the argument is checked. Redis's external-server test harness sends
// it before every test file.
func (s *Server) functionFlush(c *client, args [][]byte) {
	if len(args) > 3 {
		a := cstr(args[1])
		if len(a) > 128 {
			a = a[:128]
		}
		c.w.Error("ERR unknown subcommand or wrong number of arguments for '" + string(a) + "'. Try FUNCTION HELP.")
		return
	}
	if len(args) == 3 && !eqFold(cstr(args[2]), "sync") && !eqFold(cstr(args[2]), "async") {
		c.w.Error("ERR FUNCTION FLUSH only supports SYNC|ASYNC option")
		return
	}
	c.w.OK()
}

func (s *Server) functionHelp(c *client, _ [][]byte) {
	help(c, "FUNCTION",
		"FLUSH [ASYNC|SYNC]",
		"    Delete all the libraries.",
		"    When called without the optional mode argument, the behavior is determined by the",
		"    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
		"    * ASYNC: Asynchronously flush the libraries.",
		"    * SYNC: Synchronously flush the libraries.",
	)
}

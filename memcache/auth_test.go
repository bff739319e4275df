package memcache

import "testing"

// TestAuthentication: with a password, memcached 1.6's ASCII authentication (a
// "set" carrying "user password") comes first, with memcached's replies; nothing
// is stored by it, and the connection then works normally.
func TestAuthentication(t *testing.T) {
	ts := startServer(t, serverOptions{cfg: Config{Password: "s3cret"}})
	c := dialRaw(t, ts.addr)
	c.roundTrip("get k\r\n", lineUnauthenticated)
	c.roundTrip("version\r\n", lineUnauthenticated)
	c.roundTrip("set k 0 0 notanumber\r\n", lineUnauthenticated)
	c.roundTrip("set auth 0 0 12\r\ndefault nope\r\n", lineAuthFailure)
	c.roundTrip("set auth 0 0 12\r\nbob   s3cret\r\n", lineAuthFailure)
	c.roundTrip("set auth 0 0 7\r\ndefault\r\n", lineAuthFormat)
	c.roundTrip("set auth 0 0 3\r\nabcde\r\n", lineAuthTermination)
	// The two bytes after the bad block ("e\r" above was the block's end) leave
	// "\n" behind, an empty line, as in memcached.
	c.expect(lineUnauthenticated)
	c.roundTrip("set auth 0 0 14\r\ndefault s3cret\r\nget auth\r\n", "STORED", "END")
	c.roundTrip("set k 0 0 1\r\nv\r\nget k\r\n", "STORED", "VALUE k 0 1", "v", "END")
	st := readStats(c)
	if st["auth_cmds"] != "3" || st["auth_errors"] != "2" {
		t.Fatalf("auth_cmds %q auth_errors %q, want 3 and 2", st["auth_cmds"], st["auth_errors"])
	}
	// An oversized block is refused and the connection closed.
	d := dialRaw(t, ts.addr)
	d.send("set auth 0 0 100000\r\n")
	if got := d.expectClosed(); got != lineAuthFormat+"\r\n" {
		t.Fatalf("oversized auth block: %q", got)
	}
}

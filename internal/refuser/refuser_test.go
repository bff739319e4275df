package refuser

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestRefuseDoesNotBlock: a connection whose write would block (net.Pipe: a
// client that never reads, like a TLS client that never handshakes) is answered in
// the background and closed within the deadline; beyond Max answers under way a
// connection is closed at once; a reading client gets the line.
func TestRefuseDoesNotBlock(t *testing.T) {
	r := New()
	start := time.Now()
	var clients []net.Conn
	for range Max + 5 {
		srv, cli := net.Pipe()
		clients = append(clients, cli)
		r.Refuse(srv, []byte("ERR busy\r\n"))
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("Refuse blocked for %v", d)
	}
	// The ones past Max were closed unanswered at once.
	for _, cli := range clients[Max:] {
		_ = cli.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if n, err := cli.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("connection past Max: read %d, %v; want EOF", n, err)
		}
	}
	r.Wait() // the stalled answers give up after their one-second deadline
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Wait took %v", d)
	}
	srv, cli := net.Pipe()
	go r.Refuse(srv, []byte("ERR busy\r\n"))
	_ = cli.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(cli)
	if string(b) != "ERR busy\r\n" || err != nil {
		t.Fatalf("reading client got %q, %v", b, err)
	}
	r.Wait()
}

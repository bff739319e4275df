package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"net"
	"strconv"
	"sync"

	"github.com/tidwall/redcon"
)

// NameBaseline is the Go baseline server (ServeBaseline) that Compare runs with
// CompareConfig.Baseline.
const NameBaseline = "go-baseline"

// ServeBaseline serves the least a Go server built like dynakv does per request,
// until ctx ends: RESP on resp through redcon with a goroutine per connection, as
// dynakv's resp package, and the memcached text protocol on mc with a goroutine per
// connection that reads through bufio and flushes its replies when its input runs
// dry, as dynakv's memcache package. Behind both front ends there is only a map
// under sharded locks: no quorum, no versions, no storage, no expiry.
//
// It answers what the bench workload sends: RESP GET, SET key value (options are
// not read), PING and QUIT; memcached get and gets (with a cas of 0), set (flags
// kept, exptime not read, noreply honoured), version and quit. Anything else gets
// the unknown-command error of the server it imitates. Compare measures it beside
// redis-server and memcached: its ratios are the ceiling that the network model
// alone leaves dynakv on the host, and dynakv's ratios to it are what the Dynamo
// machinery costs beneath that.
//
// Either listener may be nil. ServeBaseline closes both, and every connection,
// before it returns; it returns nil once ctx ends, or the first accept error.
func ServeBaseline(ctx context.Context, resp, mc net.Listener) error {
	b := newBaseline()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	if resp != nil {
		rs := redcon.NewServer("", b.serveRESP, nil, nil)
		wg.Go(func() { errs <- rs.Serve(resp) })
		wg.Go(func() {
			<-ctx.Done()
			// Closing the listener ends Serve even if it has not begun yet (rs.Close
			// would then do nothing); redcon closes every RESP connection as its
			// accept loop ends.
			_ = resp.Close()
			_ = rs.Close()
		})
	}
	if mc != nil {
		wg.Go(func() { errs <- b.acceptMemcache(ctx, mc) })
		wg.Go(func() {
			<-ctx.Done()
			_ = mc.Close()
			b.closeConns()
		})
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errs:
	}
	cancel()
	wg.Wait()
	b.wg.Wait()
	if ctx.Err() != nil && (err == nil || errors.Is(err, net.ErrClosed)) {
		return nil
	}
	return err
}

const baselineShards = 64

func newBaseline() *baseline {
	b := &baseline{conns: map[net.Conn]struct{}{}}
	b.seed = maphash.MakeSeed()
	for i := range b.shards {
		b.shards[i].m = map[string]baselineItem{}
	}
	return b
}

type baseline struct {
	seed   maphash.Seed
	shards [baselineShards]struct {
		mu sync.RWMutex
		m  map[string]baselineItem
	}

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // open memcached connections
	closed bool
	wg     sync.WaitGroup // one per memcached connection goroutine
}

type baselineItem struct {
	flags uint32
	data  []byte
}

func (b *baseline) get(key []byte) (baselineItem, bool) {
	s := &b.shards[maphash.Bytes(b.seed, key)%baselineShards]
	s.mu.RLock()
	it, ok := s.m[string(key)]
	s.mu.RUnlock()
	return it, ok
}

// set stores it under key; it.data must not be changed afterwards.
func (b *baseline) set(key []byte, it baselineItem) {
	s := &b.shards[maphash.Bytes(b.seed, key)%baselineShards]
	s.mu.Lock()
	s.m[string(key)] = it
	s.mu.Unlock()
}

func (b *baseline) serveRESP(conn redcon.Conn, cmd redcon.Command) {
	if b.execRESP(conn, cmd.Args) {
		_ = conn.Close()
	}
}

// respWriter is the part of redcon.Conn that execRESP answers through.
type respWriter interface {
	WriteBulk(bulk []byte)
	WriteNull()
	WriteString(str string)
	WriteError(msg string)
}

// execRESP runs one RESP command; quit says the connection ends after the reply.
func (b *baseline) execRESP(w respWriter, args [][]byte) (quit bool) {
	switch {
	case eqFold(args[0], "GET") && len(args) == 2:
		if it, ok := b.get(args[1]); ok {
			w.WriteBulk(it.data)
		} else {
			w.WriteNull()
		}
	case eqFold(args[0], "SET") && len(args) >= 3:
		b.set(args[1], baselineItem{data: bytes.Clone(args[2])})
		w.WriteString("OK")
	case eqFold(args[0], "PING") && len(args) == 1:
		w.WriteString("PONG")
	case eqFold(args[0], "QUIT"):
		w.WriteString("OK")
		return true
	case eqFold(args[0], "GET") || eqFold(args[0], "SET") || eqFold(args[0], "PING"):
		w.WriteError(fmt.Sprintf("ERR wrong number of arguments for '%s' command", bytes.ToLower(args[0])))
	default:
		w.WriteError(fmt.Sprintf("ERR unknown command '%s'", args[0]))
	}
	return false
}

func eqFold(b []byte, s string) bool { return len(b) == len(s) && bytes.EqualFold(b, []byte(s)) }

func (b *baseline) acceptMemcache(ctx context.Context, ln net.Listener) error {
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			_ = nc.Close()
			continue
		}
		b.conns[nc] = struct{}{}
		b.wg.Add(1)
		b.mu.Unlock()
		go func() {
			defer b.wg.Done()
			b.serveMemcache(nc)
			b.mu.Lock()
			delete(b.conns, nc)
			b.mu.Unlock()
			_ = nc.Close()
		}()
	}
}

func (b *baseline) closeConns() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for nc := range b.conns {
		_ = nc.Close()
	}
}

// serveMemcache answers one memcached connection until it ends or sends quit.
func (b *baseline) serveMemcache(nc net.Conn) {
	r := bufio.NewReaderSize(nc, mcMaxLine)
	w := bufio.NewWriterSize(nc, 16<<10)
	var scratch []byte
	for {
		if r.Buffered() == 0 && w.Flush() != nil {
			return
		}
		line, err := r.ReadSlice('\n') // at most mcMaxLine
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				_, _ = w.WriteString("CLIENT_ERROR line too long\r\n")
				_ = w.Flush()
			}
			return
		}
		toks := bytes.Fields(line)
		if len(toks) == 0 {
			_, _ = w.WriteString("ERROR\r\n")
			continue
		}
		switch cmd := string(toks[0]); cmd {
		case "get", "gets":
			if len(toks) < 2 {
				_, _ = w.WriteString("ERROR\r\n")
				continue
			}
			scratch = b.appendValues(scratch[:0], cmd, toks[1:])
			_, _ = w.Write(scratch)
		case "set":
			if !b.mcSet(r, w, toks) {
				return
			}
		case "version":
			_, _ = w.WriteString("VERSION dynakv-bench-baseline\r\n")
		case "quit":
			_ = w.Flush()
			return
		default:
			_, _ = w.WriteString("ERROR\r\n")
		}
	}
}

// appendValues appends the reply to "get" or "gets" (cmd) of keys to dst.
func (b *baseline) appendValues(dst []byte, cmd string, keys [][]byte) []byte {
	for _, k := range keys {
		it, ok := b.get(k)
		if !ok {
			continue
		}
		dst = append(dst, "VALUE "...)
		dst = append(dst, k...)
		dst = append(dst, ' ')
		dst = strconv.AppendUint(dst, uint64(it.flags), 10)
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, int64(len(it.data)), 10)
		if cmd == "gets" {
			dst = append(dst, " 0"...)
		}
		dst = append(dst, "\r\n"...)
		dst = append(dst, it.data...)
		dst = append(dst, "\r\n"...)
	}
	return append(dst, "END\r\n"...)
}

// mcSetLine is a parsed "set <key> <flags> <exptime> <bytes> [noreply]" line.
type mcSetLine struct {
	key     []byte // a copy
	flags   uint32
	n       int // the data block's length, without its \r\n
	noreply bool
}

// parseSet parses a set line. A non-empty reply is an error to answer instead:
// then skip says whether the data block (n+2 bytes) is to be skipped, as
// memcached does with a value too large; otherwise it is read as commands.
func parseSet(toks [][]byte) (s mcSetLine, reply string, skip bool) {
	if len(toks) < 5 || len(toks) > 6 {
		return s, "ERROR\r\n", false
	}
	flags, ferr := strconv.ParseUint(string(toks[2]), 10, 32)
	n, nerr := strconv.Atoi(string(toks[4]))
	if ferr != nil || nerr != nil || n < 0 {
		return s, "CLIENT_ERROR bad command line format\r\n", false
	}
	s = mcSetLine{key: bytes.Clone(toks[1]), flags: uint32(flags), n: n, noreply: len(toks) == 6 && string(toks[5]) == "noreply"}
	if n > maxBaselineValue {
		return s, "SERVER_ERROR object too large for cache\r\n", true
	}
	return s, "", false
}

// store stores a set's data block (with its \r\n; data[:s.n] must not change
// afterwards) and returns the reply ("" with noreply).
func (b *baseline) store(s mcSetLine, data []byte) string {
	if !bytes.HasSuffix(data, []byte("\r\n")) {
		return "CLIENT_ERROR bad data chunk\r\n"
	}
	b.set(s.key, baselineItem{flags: s.flags, data: data[:s.n]})
	if s.noreply {
		return ""
	}
	return "STORED\r\n"
}

// mcSet runs a set line; false ends the connection (its data block could not be
// read). toks point into r's buffer, which reading the data block may
// overwrite: parseSet copies what is needed of them first.
func (b *baseline) mcSet(r *bufio.Reader, w *bufio.Writer, toks [][]byte) bool {
	s, reply, skip := parseSet(toks)
	if skip {
		if _, err := r.Discard(s.n + 2); err != nil {
			return false
		}
	}
	if reply == "" {
		data := make([]byte, s.n+2)
		if _, err := io.ReadFull(r, data); err != nil {
			return false
		}
		reply = b.store(s, data)
	}
	_, _ = w.WriteString(reply)
	return true
}

// maxBaselineValue is the largest value the baseline stores, memcached's default.
const maxBaselineValue = 1 << 20

// mcMaxLine is the longest memcached command line the baseline reads.
const mcMaxLine = 16 << 10

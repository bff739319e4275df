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
	b := &baseline{conns: map[net.Conn]struct{}{}}
	b.seed = maphash.MakeSeed()
	for i := range b.shards {
		b.shards[i].m = map[string]baselineItem{}
	}
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
	args := cmd.Args
	switch {
	case eqFold(args[0], "GET") && len(args) == 2:
		if it, ok := b.get(args[1]); ok {
			conn.WriteBulk(it.data)
		} else {
			conn.WriteNull()
		}
	case eqFold(args[0], "SET") && len(args) >= 3:
		b.set(args[1], baselineItem{data: bytes.Clone(args[2])})
		conn.WriteString("OK")
	case eqFold(args[0], "PING") && len(args) == 1:
		conn.WriteString("PONG")
	case eqFold(args[0], "QUIT"):
		conn.WriteString("OK")
		_ = conn.Close()
	case eqFold(args[0], "GET") || eqFold(args[0], "SET") || eqFold(args[0], "PING"):
		conn.WriteError(fmt.Sprintf("ERR wrong number of arguments for '%s' command", bytes.ToLower(args[0])))
	default:
		conn.WriteError(fmt.Sprintf("ERR unknown command '%s'", args[0]))
	}
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
	r := bufio.NewReaderSize(nc, 16<<10)
	w := bufio.NewWriterSize(nc, 16<<10)
	for {
		if r.Buffered() == 0 && w.Flush() != nil {
			return
		}
		line, err := r.ReadSlice('\n')
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
			for _, k := range toks[1:] {
				it, ok := b.get(k)
				if !ok {
					continue
				}
				_, _ = w.WriteString("VALUE ")
				_, _ = w.Write(k)
				_, _ = w.WriteString(" " + strconv.FormatUint(uint64(it.flags), 10) + " " + strconv.Itoa(len(it.data)))
				if cmd == "gets" {
					_, _ = w.WriteString(" 0")
				}
				_, _ = w.WriteString("\r\n")
				_, _ = w.Write(it.data)
				_, _ = w.WriteString("\r\n")
			}
			_, _ = w.WriteString("END\r\n")
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

// mcSet runs "set <key> <flags> <exptime> <bytes> [noreply]"; false ends the
// connection (its data block could not be read). toks point into r's buffer,
// which reading the data block may overwrite: what is needed of them is taken
// first.
func (b *baseline) mcSet(r *bufio.Reader, w *bufio.Writer, toks [][]byte) bool {
	if len(toks) < 5 || len(toks) > 6 {
		_, _ = w.WriteString("ERROR\r\n")
		return true
	}
	flags, ferr := strconv.ParseUint(string(toks[2]), 10, 32)
	n, nerr := strconv.Atoi(string(toks[4]))
	if ferr != nil || nerr != nil || n < 0 {
		// As memcached: the data block, if any, is then read as commands.
		_, _ = w.WriteString("CLIENT_ERROR bad command line format\r\n")
		return true
	}
	key := bytes.Clone(toks[1])
	noreply := len(toks) == 6 && string(toks[5]) == "noreply"
	if n > maxBaselineValue {
		// As memcached: refuse it, and skip its data block.
		if _, err := r.Discard(n + 2); err != nil {
			return false
		}
		_, _ = w.WriteString("SERVER_ERROR object too large for cache\r\n")
		return true
	}
	data := make([]byte, n+2)
	if _, err := io.ReadFull(r, data); err != nil {
		return false
	}
	if !bytes.HasSuffix(data, []byte("\r\n")) {
		_, _ = w.WriteString("CLIENT_ERROR bad data chunk\r\n")
		return true
	}
	b.set(key, baselineItem{flags: uint32(flags), data: data[:n]})
	if !noreply {
		_, _ = w.WriteString("STORED\r\n")
	}
	return true
}

// maxBaselineValue is the largest value the baseline stores, memcached's default.
const maxBaselineValue = 1 << 20

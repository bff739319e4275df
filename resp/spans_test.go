package resp

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tidwall/redcon"
)

// TestSpansAlias checks the fast path copies nothing: a multibulk command's
// arguments are slices of the input, while inline ones are unescaped copies.
func TestSpansAlias(t *testing.T) {
	in := []byte(encode("SET", "k", "v1") + "ECHO \"a\\x41\"\r\n" + encode("GET", "k"))
	f := framer{maxBulk: DefaultProtoMaxBulkLen}
	var cmds commands
	r := f.spans(in, &cmds, false, false)
	if r.err != "" || r.used != len(in) || r.frames != 3 || cmds.len() != 3 {
		t.Fatalf("%+v, %d commands", r, cmds.len())
	}
	want := [][]string{{"SET", "k", "v1"}, {"ECHO", "aA"}, {"GET", "k"}}
	for i, w := range want {
		if got := cmds.get(i); !slices.EqualFunc(got, w, func(a []byte, b string) bool { return string(a) == b }) {
			t.Fatalf("command %d: %q, want %q", i, got, w)
		}
	}
	for i := range in {
		in[i] = '#'
	}
	if got := cmds.get(0); string(got[2]) != "##" || string(cmds.get(2)[1]) != "#" {
		t.Fatalf("multibulk arguments were copied: %q %q", got, cmds.get(2))
	}
	if got := cmds.get(1); string(got[1]) != "aA" {
		t.Fatalf("inline arguments alias the input: %q", got)
	}
	// A handler appending to an argument must not overwrite the next one.
	_ = append(cmds.get(2)[0], 'x', 'x')
	if string(cmds.get(2)[1]) != "#" {
		t.Fatalf("append to an argument clobbered the next: %q", cmds.get(2))
	}
}

// TestSpansResume checks that a command arriving in many pieces is parsed once,
// not again from its start on every piece: the bytes the framer advances over,
// summed over the calls, are the input's length. It is what keeps a large value
// linear in its size.
func TestSpansResume(t *testing.T) {
	for _, piece := range []int{1, 7, 64 << 10} {
		t.Run(fmt.Sprint(piece), func(t *testing.T) {
			value := strings.Repeat("v", 1<<20)
			if piece == 1 {
				value = value[:20000]
			}
			in := []byte(encode("SET", "key", value) + encode("GET", "key") + "PING\r\n")
			f := framer{maxBulk: DefaultProtoMaxBulkLen}
			var cmds commands
			var buf []byte
			scanned, frames := 0, 0
			for i := 0; i < len(in); i += piece {
				buf = append(buf, in[i:min(i+piece, len(in))]...)
				before := f.at
				r := f.spans(buf, &cmds, false, false)
				if r.err != "" || r.kill {
					t.Fatalf("%+v", r)
				}
				scanned += r.used + f.at - before
				frames += r.frames
				buf = buf[r.used:]
			}
			if scanned != len(in) || frames != 3 || len(buf) != 0 {
				t.Fatalf("advanced over %d bytes of %d, %d commands, %d bytes left", scanned, len(in), frames, len(buf))
			}
			if got := cmds.get(0); string(got[2]) != value {
				t.Fatalf("value of %d bytes, want %d", len(got[2]), len(value))
			}
		})
	}
}

// TestLineResume checks that a line arriving in pieces is searched once: the
// framer remembers how far it searched for the line's end.
func TestLineResume(t *testing.T) {
	for _, line := range []string{"ECHO " + strings.Repeat("x", 5000) + "\r\n", "ECHO\x00 " + strings.Repeat("x", 5000) + "\r\nPING\r\n"} {
		for _, spans := range []bool{false, true} {
			f := framer{maxBulk: DefaultProtoMaxBulkLen}
			var cmds commands
			var buf, out []byte
			var frames int
			for i := range len(line) {
				buf = append(buf, line[i])
				var r feedResult
				if spans {
					r = f.spans(buf, &cmds, false, false)
				} else {
					r = f.feed(buf, &out, false, false)
				}
				if r.err != "" {
					t.Fatal(r.err)
				}
				buf, frames = buf[r.used:], frames+r.frames
				if len(buf) > 0 && !f.nul && f.scan != len(buf) {
					t.Fatalf("spans %v, %d bytes in: searched %d of the line's %d", spans, i+1, f.scan, len(buf))
				}
			}
			if want := strings.IndexByte(line, 0) < 0; (frames == 1) != want {
				t.Fatalf("spans %v: %d commands", spans, frames)
			}
		}
	}
}

// TestWireBigValue sends a large value in 64 KiB reads: the arguments are right,
// the input buffer grew with the bytes that arrived (to about the command's size),
// and went back to its small size once the command was done.
func TestWireBigValue(t *testing.T) {
	s := New(Config{IOModel: IOGoroutine}, nil)
	value := bytes.Repeat([]byte("0123456789abcdef"), 8<<20/16)
	cmd := encode("SET", "key", string(value))
	cc := &chunkConn{data: []byte(cmd + encode("GET", "key")), size: 64 << 10}
	w := newWire(cc, s)
	var cmds commands
	var got []string
	maxCap := 0
	for {
		err := w.next(&cmds)
		maxCap = max(maxCap, cap(w.in))
		if err != nil {
			break
		}
		for i := range cmds.len() {
			args := cmds.get(i)
			if string(args[0]) == "SET" && !bytes.Equal(args[2], value) {
				t.Fatalf("value of %d bytes", len(args[2]))
			}
			got = append(got, string(args[0]))
		}
	}
	if !slices.Equal(got, []string{"SET", "GET"}) {
		t.Fatalf("commands %q", got)
	}
	if maxCap > len(cmd)+inMax {
		t.Fatalf("buffer of %d bytes for a command of %d", maxCap, len(cmd))
	}
	if cap(w.in) > inMax {
		t.Fatalf("buffer of %d bytes after the big command", cap(w.in))
	}
}

// TestWireNotSizedFromHeader checks that a header claiming a huge argument
// allocates nothing for it: the buffer holds what arrived.
func TestWireNotSizedFromHeader(t *testing.T) {
	s := New(Config{IOModel: IOGoroutine}, nil)
	cc := &chunkConn{data: []byte("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870000\r\n" + strings.Repeat("v", 10000)), size: 1 << 20}
	w := newWire(cc, s)
	var cmds commands
	if err := w.next(&cmds); err == nil || cmds.len() != 0 {
		t.Fatalf("%v, %d commands", err, cmds.len())
	}
	if cap(w.in) > 64<<10 {
		t.Fatalf("buffer of %d bytes for 10 KB received", cap(w.in))
	}
}

// BenchmarkParse compares the old parse path (the framer's canonical frames,
// parsed again by redcon's reader, which copies each command) with the spans the
// server now uses, on a pipeline of 100 SETs: b.N counts pipelines, allocations
// are per pipeline.
func BenchmarkParse(b *testing.B) {
	const n = 100
	in := []byte(strings.Repeat(encode("SET", "key:000123", "value-value-value"), n))
	b.Run("reencode+redcon", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		b.ReportAllocs()
		var out []byte
		src := bytes.NewReader(nil)
		rd := redcon.NewReader(src)
		f := framer{maxBulk: DefaultProtoMaxBulkLen}
		for b.Loop() {
			out = out[:0]
			f.feed(in, &out, false, false)
			src.Reset(out)
			for got := 0; got < n; {
				cmds, err := rd.ReadCommands()
				if err != nil {
					b.Fatal(err)
				}
				got += len(cmds)
			}
		}
	})
	b.Run("spans", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		b.ReportAllocs()
		var cmds commands
		f := framer{maxBulk: DefaultProtoMaxBulkLen}
		for b.Loop() {
			cmds.reset()
			if f.spans(in, &cmds, false, false); cmds.len() != n {
				b.Fatal(cmds.len())
			}
		}
	})
}

// BenchmarkWireBigValue feeds one SET of a large value through a wire in 64 KiB
// reads (as a socket delivers it): the time per byte stays flat as the value
// grows, since the framer resumes where it stopped.
func BenchmarkWireBigValue(b *testing.B) {
	s := New(Config{IOModel: IOGoroutine}, nil)
	for _, size := range []int{1 << 20, 8 << 20, 64 << 20} {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			in := []byte(encode("SET", "key", strings.Repeat("v", size)))
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			var cmds commands
			for b.Loop() {
				w := newWire(&chunkConn{data: in, size: 64 << 10}, s)
				if err := w.next(&cmds); err != nil || cmds.len() != 1 {
					b.Fatal(err)
				}
			}
		})
	}
}

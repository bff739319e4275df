package memcache

import (
	"bytes"
	"errors"
)

// The byte-slice reader: it finds the command lines and data blocks of the
// memcached text protocol in the bytes a connection receives, fed as they arrive,
// in pieces of any size. It does no I/O: the goroutine driver (conn.serve) feeds it
// what each read returned, and an event loop can feed it the same way.
//
// Invariants:
//
//   - A command is returned only when it is whole: its line and, when the line
//     announces one, its data block. Commands come one at a time, and the caller
//     runs each before it asks for the next: whether a line announces a block is
//     the caller's decision (conn.blockFor), which may depend on the commands
//     before it (authentication).
//   - Bytes of an incomplete command are copied into the reader, and only those:
//     a line or block wholly inside a piece is found where it lies.
//   - Nothing is allocated because a header claims it. A command line that has not
//     met its "\n" is kept up to maxLine bytes (maxGetLine for a get/gets
//     multi-get, as memcached allows); beyond that it is errLineTooLong. A data
//     block is allocated as its bytes arrive (the first allocation at most
//     blockChunk bytes, then doubling), and the caller refuses blocks over the
//     value limit before a byte is read: those are swallowed as they stream in,
//     never stored.
//   - Limits are those of the bufio reader this replaces: a line found whole in
//     what has arrived is accepted up to maxLongLine bytes (any multi-get up to
//     maxGetLine), so, as in memcached, whether a line a little over maxLine is
//     accepted depends on how much of it arrived at once. Below maxLine nothing
//     depends on how the input is split.

const (
	// maxLongLine bounds a line that is not a multi-get, "\n" included, even when
	// it arrives whole: the size of the read buffer that bounded it before.
	maxLongLine = readBufSize
	// keepLine is the largest line buffer kept for the connection's next line.
	keepLine = 64 << 10
	// multiGetHead is enough of a line for isMultiGet: 100 spaces and "gets ".
	multiGetHead = 128
)

var errLineTooLong = errors.New("memcache: line too long")

// blockSpec is what follows a command line, as the caller decides from the line.
type blockSpec struct {
	size    int  // bytes after the line: the data and its "\r\n"; 0: none
	swallow bool // discard them as they arrive (a refused block)
}

// command is one whole command.
type command struct {
	// line is the command line without its line end, cut at a NUL as memcached
	// does (trimLine). It is valid until the next call of reader.next.
	line []byte
	// hasBlock: a data block followed the line and block holds it, without its
	// last two bytes; blockOK: those were "\r\n". The block is a fresh copy, the
	// caller's to keep.
	hasBlock, blockOK bool
	block             []byte
	// swallowed: the line announced a block that the reader discards.
	swallowed bool
}

// reader holds the state of one connection's incomplete command. The zero value
// is not ready: blockFor must be set.
type reader struct {
	// blockFor says what follows a command line; it runs once per line, when the
	// line is whole, and the line is valid only during the call.
	blockFor func(line []byte) blockSpec

	line     []byte // an incomplete line so far, or the whole line of an incomplete block
	lineDone bool   // line is whole (and trimmed); block is being filled
	block    []byte // the data block so far, its "\r\n" included
	need     int    // the size the block will have
	skip     int    // bytes of a swallowed block still to discard
}

// next finds the next whole command in in, the bytes that arrived after those of
// the previous calls. used is how many bytes of in it took. ok is false when in
// ends inside a command: then used is len(in), and the reader keeps what it needs
// for the next call. err (errLineTooLong) is final: the connection must end.
func (r *reader) next(in []byte) (cmd command, used int, ok bool, err error) {
	if r.skip > 0 {
		n := min(r.skip, len(in))
		r.skip -= n
		used, in = n, in[n:]
		if r.skip > 0 {
			return cmd, used, false, nil
		}
	}
	if r.lineDone {
		return r.fillBlock(in, used)
	}
	if len(in) == 0 {
		return cmd, used, false, nil
	}
	i := bytes.IndexByte(in, '\n')
	if i < 0 {
		return cmd, len(in) + used, false, r.partialLine(in)
	}
	raw := in[:i]
	if len(r.line) > 0 {
		r.line = append(r.line, raw...)
		raw = r.line
	}
	if len(raw) >= maxLongLine && (len(raw) > maxGetLine || !isMultiGet(raw)) {
		return cmd, used, false, errLineTooLong
	}
	used += i + 1
	in = in[i+1:]
	cmd.line = trimLine(raw)
	spec := r.blockFor(cmd.line)
	switch {
	case spec.size <= 0:
		r.resetLine()
		return cmd, used, true, nil
	case spec.swallow:
		r.resetLine()
		r.skip = spec.size
		cmd.swallowed = true
		return cmd, used, true, nil
	case len(in) >= spec.size:
		r.resetLine()
		n := spec.size - 2
		cmd.hasBlock, cmd.block = true, append(make([]byte, 0, n), in[:n]...)
		cmd.blockOK = in[n] == '\r' && in[n+1] == '\n'
		return cmd, used + spec.size, true, nil
	}
	// The block is incomplete: keep the line (copied out of in) and what arrived.
	if len(r.line) == 0 {
		r.line = append(r.line, cmd.line...)
	} else {
		r.line = cmd.line // a prefix of r.line already
	}
	r.lineDone, r.need = true, spec.size
	r.block = make([]byte, 0, min(spec.size, blockChunk))
	return r.fillBlock(in, used)
}

// fillBlock adds in to the incomplete block and returns its command once whole.
func (r *reader) fillBlock(in []byte, used int) (cmd command, _ int, ok bool, _ error) {
	for len(in) > 0 && len(r.block) < r.need {
		if len(r.block) == cap(r.block) {
			grown := make([]byte, len(r.block), min(2*cap(r.block), r.need))
			copy(grown, r.block)
			r.block = grown
		}
		n := copy(r.block[len(r.block):min(cap(r.block), r.need)], in)
		r.block = r.block[:len(r.block)+n]
		used, in = used+n, in[n:]
	}
	if len(r.block) < r.need {
		return cmd, used, false, nil
	}
	n := r.need - 2
	cmd = command{line: r.line, hasBlock: true, block: r.block[:n:n]}
	cmd.blockOK = r.block[n] == '\r' && r.block[n+1] == '\n'
	r.block, r.lineDone, r.need = nil, false, 0
	r.resetLine()
	return cmd, used, true, nil
}

// partialLine keeps in, the continuation of a line that has not met its "\n", or
// refuses the line when it grew too long.
func (r *reader) partialLine(in []byte) error {
	total := len(r.line) + len(in)
	if total > maxLine {
		// As memcached decides: only a multi-get may grow this long; the check
		// needs the line's first bytes (at most 100 spaces and "gets ").
		head := r.line
		if len(head) < multiGetHead {
			var buf [multiGetHead]byte
			head = append(append(buf[:0], r.line...), in[:min(len(in), multiGetHead-len(r.line))]...)
		}
		if total > maxGetLine || !isMultiGet(head) {
			return errLineTooLong
		}
	}
	r.line = append(r.line, in...)
	return nil
}

// resetLine empties the line buffer for the next line (the last line returned
// may alias it until then), dropping a large one.
func (r *reader) resetLine() {
	if cap(r.line) > keepLine {
		r.line = nil
	}
	r.line = r.line[:0]
}

package memcache

import (
	"bufio"
	"bytes"
	"io"
)

// bufioReader is the read path the byte-slice reader replaced, kept verbatim as
// FuzzReader's oracle: readLine, readBlock and swallow over a bufio.Reader of
// readBufSize bytes (with the conn it lived in reduced to what they use).
type bufioReader struct {
	r   *bufio.Reader
	big []byte // a multi-get line longer than the read buffer
}

// readLine returns the next command line without its line end. The line aliases the
// read buffer (or c.big) and is valid until the next read from c.r.
func (c *bufioReader) readLine() ([]byte, error) {
	if cap(c.big) > 64<<10 {
		c.big = nil // do not keep a huge multi-get's buffer for the connection's life
	}
	c.big = c.big[:0]
	scanned := 0 // buffered bytes already known to hold no "\n"
	for {
		if n := c.r.Buffered(); n > 0 {
			buf, _ := c.r.Peek(n)
			i := bytes.IndexByte(buf[scanned:], '\n')
			if i >= 0 {
				i += scanned
			}
			scanned = n
			switch {
			case i >= 0 && len(c.big) == 0:
				c.r.Discard(i + 1)
				return trimLine(buf[:i]), nil
			case i >= 0:
				if len(c.big)+i > maxGetLine {
					return nil, errLineTooLong
				}
				c.big = append(c.big, buf[:i]...)
				c.r.Discard(i + 1)
				return trimLine(c.big), nil
			case len(c.big) > 0:
				if len(c.big)+n > maxGetLine {
					return nil, errLineTooLong
				}
				c.big = append(c.big, buf...)
				c.r.Discard(n)
				scanned = 0
			case n > maxLine:
				if !isMultiGet(buf) {
					return nil, errLineTooLong
				}
				if n == c.r.Size() {
					// The buffer is full: continue the line in c.big.
					c.big = append(c.big, buf...)
					c.r.Discard(n)
					scanned = 0
				}
			}
		}
		// Wait for more bytes: Peek fills the buffer with at least one more.
		if _, err := c.r.Peek(c.r.Buffered() + 1); err != nil {
			return nil, err
		}
	}
}

// readBlock reads a data block of n bytes and its "\r\n". ok is false when the two
// bytes after the data are not "\r\n" (memcached's "bad data chunk"). The buffer
// grows with the bytes received, so a client cannot make the server allocate what it
// does not send.
func (c *bufioReader) readBlock(n int) (data []byte, ok bool, err error) {
	total := n + 2
	var buf []byte
	if total <= blockChunk {
		buf = make([]byte, total)
		if _, err := io.ReadFull(c.r, buf); err != nil {
			return nil, false, err
		}
	} else {
		buf = make([]byte, 0, blockChunk)
		for len(buf) < total {
			if len(buf) == cap(buf) {
				grown := make([]byte, len(buf), min(2*cap(buf), total))
				copy(grown, buf)
				buf = grown
			}
			m, err := c.r.Read(buf[len(buf):min(cap(buf), total)])
			buf = buf[:len(buf)+m]
			if err != nil && len(buf) < total {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return nil, false, err
			}
		}
	}
	return buf[:n:n], buf[n] == '\r' && buf[n+1] == '\n', nil
}

// swallow discards a refused data block of n bytes as it arrives.
func (c *bufioReader) swallow(n int) error {
	_, err := c.r.Discard(n)
	return err
}

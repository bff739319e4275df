package memcache

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/dynakv/dynakv/proxy"
)

// errorLines maps proxy (and context) errors to memcached reply lines, without
// "\r\n". It is the only place where an error becomes wire text.
var errorLines = []struct {
	err  error
	line string
}{
	{proxy.ErrNonNumeric, "CLIENT_ERROR cannot increment or decrement non-numeric value"},
	{proxy.ErrNotInteger, "CLIENT_ERROR cannot increment or decrement non-numeric value"},
	{proxy.ErrValueTooBig, "SERVER_ERROR object too large for cache"},
	{proxy.ErrInvalidFlush, "CLIENT_ERROR invalid exptime argument"},
	{proxy.ErrOverflow, "CLIENT_ERROR increment or decrement overflow"},
	{proxy.ErrUnknownOp, "SERVER_ERROR unknown operation"},
	{proxy.ErrOOM, "SERVER_ERROR out of memory storing object"},
	{proxy.ErrOutcomeUnknown, "SERVER_ERROR outcome unknown: the coordinating node failed before answering"},
	{context.DeadlineExceeded, "SERVER_ERROR timeout"},
	{context.Canceled, "SERVER_ERROR server shutting down"},
}

// errorLine returns the memcached reply line (without "\r\n") for err. Errors not in
// the table become "SERVER_ERROR <text>", their text flattened to one line.
func errorLine(err error) string {
	if qe, ok := errors.AsType[*proxy.QuorumError](err); ok {
		return fmt.Sprintf("SERVER_ERROR noquorum reached %d of %d replicas", qe.Acks, qe.Need)
	}
	for _, e := range errorLines {
		if errors.Is(err, e.err) {
			return e.line
		}
	}
	return "SERVER_ERROR " + oneLine(err.Error())
}

// oneLine keeps s from breaking the protocol: control bytes become spaces.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// Reply lines memcached sends for malformed input.
const (
	lineError        = "ERROR"
	lineBadFormat    = "CLIENT_ERROR bad command line format"
	lineBadChunk     = "CLIENT_ERROR bad data chunk"
	lineTooLarge     = "SERVER_ERROR object too large for cache"
	lineLineTooLong  = "CLIENT_ERROR line too long"
	lineBadExptime   = "CLIENT_ERROR invalid exptime argument"
	lineBadDelta     = "CLIENT_ERROR invalid numeric delta argument"
	lineNonNumeric   = "CLIENT_ERROR cannot increment or decrement non-numeric value"
	lineTooManyConns = "ERROR Too many open connections"
	lineDeleteUsage  = "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]"

	lineMetaDupFlag      = "CLIENT_ERROR duplicate flag"
	lineMetaBadFlag      = "CLIENT_ERROR invalid flag"
	lineMetaBadToken     = "CLIENT_ERROR bad token in command line format"
	lineMetaBadMLen      = "CLIENT_ERROR incorrect length for M token"
	lineMetaBadInitial   = "CLIENT_ERROR invalid numeric initial value"
	lineMetaBadDeltaVal  = "CLIENT_ERROR invalid numeric delta value"
	lineMetaBadKey       = "CLIENT_ERROR error decoding key"
	lineMetaOpaqueLong   = "CLIENT_ERROR opaque token too long"
	lineMetaInvalidOrDup = "CLIENT_ERROR invalid or duplicate flag"
	lineMetaGetTooLong   = "CLIENT_ERROR options flags are too long"
	lineMetaTooLong      = "CLIENT_ERROR options flags too long"
	lineMetaBadSetMode   = "CLIENT_ERROR invalid mode for ms M token"
	lineMetaBadArithMode = "CLIENT_ERROR invalid mode for ma M token"
)

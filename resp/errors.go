package resp

import (
	"context"
	"errors"
	"fmt"

	"github.com/dynakv/dynakv/proxy"
)

// errLine returns the wire form of an error reply: "-" + msg + CRLF.
func errLine(msg string) []byte { return []byte("-" + msg + "\r\n") }

// Error replies that do not come from proxy, precomputed so the hot paths do not
// format them. The texts are Redis 7.2's.
var (
	errSyntax        = errLine("ERR syntax error")
	errNotInteger    = errLine("ERR value is not an integer or out of range")
	errNotFloat      = errLine("ERR value is not a valid float")
	errNoAuth        = errLine("NOAUTH Authentication required.")
	errWrongPass     = errLine("WRONGPASS invalid username-password pair or user is disabled.")
	errNoPassword    = errLine("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
	errDBIndex       = errLine("ERR DB index is out of range")
	errInvalidCursor = errLine("ERR invalid cursor")
	errOffset        = errLine("ERR offset is out of range")
	errStringTooBig  = errLine("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
	errDecrOverflow  = errLine("ERR decrement would overflow")
	errMaxClients    = errLine("ERR max number of clients reached")
	errNXXXGTLT      = errLine("ERR NX and XX, GT or LT options at the same time are not compatible")
	errGTLT          = errLine("ERR GT and LT options at the same time are not compatible")
	errClientName    = errLine("ERR Client names cannot contain spaces, newlines or special characters.")
	errHelloProto    = errLine("ERR Protocol version is not an integer or out of range")
	errNoProto       = errLine("NOPROTO unsupported protocol version")
	errHelloNoAuth   = errLine("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
	errInternal      = errLine("ERR internal error")
	errOOM           = errLine("OOM command not allowed when used memory > 'maxmemory'.")
)

// errorTable maps the errors proxy (and the request context) return to Redis's
// reply text. It is the only place where they become wire text; an error it does
// not know is logged and answered "-ERR internal error", so storage details never
// reach clients.
var errorTable = []struct {
	err  error
	line []byte
}{
	{proxy.ErrNotInteger, errNotInteger},
	{proxy.ErrOverflow, errLine("ERR increment or decrement would overflow")},
	{proxy.ErrNotFloat, errNotFloat},
	{proxy.ErrNaN, errLine("ERR increment would produce NaN or Infinity")},
	{proxy.ErrNonNumeric, errNotInteger},
	{proxy.ErrValueTooBig, errStringTooBig},
	{proxy.ErrBadContext, errLine("ERR invalid causal context")},
	{proxy.ErrBadOffset, errOffset},
	{proxy.ErrInvalidFlush, errSyntax},
	{proxy.ErrNoSuchKey, errLine("ERR no such key")},
	{proxy.ErrOOM, errOOM},
	{proxy.ErrSameKey, errLine("ERR source and destination objects are the same")},
	{proxy.ErrOutcomeUnknown, errLine("ERR the node coordinating the request failed before answering; the write may or may not have been applied")},
	{context.DeadlineExceeded, errLine("TIMEOUT the request did not complete in time")},
	{context.Canceled, errLine("ERR server is shutting down")},
}

// errorReply returns the error line for err, and whether err was known.
func errorReply(err error) ([]byte, bool) {
	if qe, ok := errors.AsType[*proxy.QuorumError](err); ok {
		return errLine(fmt.Sprintf("NOQUORUM reached %d of %d replicas", qe.Acks, qe.Need)), true
	}
	for _, e := range errorTable {
		if errors.Is(err, e.err) {
			return e.line, true
		}
	}
	return errInternal, false
}

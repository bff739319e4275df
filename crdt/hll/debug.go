package hll

import (
	"errors"
	"strconv"
	"strings"
)

// ErrNotSparse is PFDEBUG DECODE's reply for a dense value.
var ErrNotSparse = errors.New("ERR HLL encoding is not sparse")

// ToDense is PFDEBUG TODENSE: val (which must pass the header check) as a
// dense value, and whether it was converted (the reply, 1 or 0).
func ToDense(val []byte) (out []byte, converted bool, err error) {
	if err := checkHeader(val); err != nil {
		return nil, false, err
	}
	if val[4] == encDense {
		return val, false, nil
	}
	out, err = toDense(val)
	return out, err == nil, err
}

// Encoding is PFDEBUG ENCODING: "dense" or "sparse".
func Encoding(val []byte) (string, error) {
	if err := checkHeader(val); err != nil {
		return "", err
	}
	if val[4] == encDense {
		return "dense", nil
	}
	return "sparse", nil
}

// DebugDecode is PFDEBUG DECODE: the sparse opcodes as text ("z:len" for
// ZERO, "Z:len" for XZERO, "v:value,len" for VAL), without validating them,
// as Redis prints them.
func DebugDecode(val []byte) (string, error) {
	if err := checkHeader(val); err != nil {
		return "", err
	}
	if val[4] != encSparse {
		return "", ErrNotSparse
	}
	var s strings.Builder
	for p := HeaderSize; p < len(val); {
		if p > HeaderSize {
			s.WriteByte(' ')
		}
		switch op := val[p]; {
		case isZero(op):
			s.WriteString("z:" + strconv.Itoa(zeroLen(op)))
			p++
		case isXZero(op):
			s.WriteString("Z:" + strconv.Itoa(xzeroLen(val, p)))
			p += 2
		default:
			s.WriteString("v:" + strconv.Itoa(valValue(op)) + "," + strconv.Itoa(valLen(op)))
			p++
		}
	}
	return s.String(), nil
}

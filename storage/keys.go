package storage

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"

	"github.com/cespare/xxhash/v2"

	"github.com/dynakv/dynakv/record"
)

const (
	spaceData   = 'd'
	spaceHint   = 'h'
	spaceExpiry = 'x'
	spaceGrave  = 'g'
	spaceMeta   = 'm'

	dataHeader = 1 + 2 + 8 // space, partition, hash

	maxHintOwner = 255 // an owner's length is one byte of its hint keys
)

// dataKeyHashEnd is where a data key's hash ends: space byte, partition, hash.
const dataKeyHashEnd = 1 + 2 + 8

// dataKey appends the Pebble key of a record.
func dataKey(b []byte, p int, h uint64, key []byte) []byte {
	b = append(b, spaceData)
	b = binary.BigEndian.AppendUint16(b, uint16(p))
	b = binary.BigEndian.AppendUint64(b, h)
	return append(b, key...)
}

// partitionBounds returns the [start, end) range of partition p's records.
func partitionBounds(p int) (start, end []byte) {
	start = binary.BigEndian.AppendUint16([]byte{spaceData}, uint16(p))
	if p == 0xffff {
		return start, []byte{spaceData + 1}
	}
	return start, binary.BigEndian.AppendUint16([]byte{spaceData}, uint16(p+1))
}

// parseDataKey splits a record key into partition, hash and user key. The user key
// aliases k.
func parseDataKey(k []byte) (p int, h uint64, key []byte, err error) {
	if len(k) < dataHeader || k[0] != spaceData {
		return 0, 0, nil, fmt.Errorf("storage: malformed data key %q", k)
	}
	return int(binary.BigEndian.Uint16(k[1:])), binary.BigEndian.Uint64(k[3:]), k[dataHeader:], nil
}

// expiryKey appends the expiry-index key for a record that is dead at reapAt.
func expiryKey(b []byte, reapAt int64, p int, h uint64, key []byte) []byte {
	return timeIndexKey(b, spaceExpiry, reapAt, p, h, key)
}

// graveKey appends the grave-index key for a record of tombstones written at t.
func graveKey(b []byte, t int64, p int, h uint64, key []byte) []byte {
	return timeIndexKey(b, spaceGrave, t, p, h, key)
}

func timeIndexKey(b []byte, space byte, t int64, p int, h uint64, key []byte) []byte {
	b = append(b, space)
	b = binary.BigEndian.AppendUint64(b, uint64(t))
	b = binary.BigEndian.AppendUint16(b, uint16(p))
	b = binary.BigEndian.AppendUint64(b, h)
	return append(b, key...)
}

// parseTimeIndexKey splits an expiry- or grave-index key.
func parseTimeIndexKey(k []byte, space byte) (t int64, p int, h uint64, key []byte, err error) {
	if len(k) < 1+8+2+8 || k[0] != space {
		return 0, 0, 0, nil, fmt.Errorf("storage: malformed index key %q", k)
	}
	return int64(binary.BigEndian.Uint64(k[1:])), int(binary.BigEndian.Uint16(k[9:])),
		binary.BigEndian.Uint64(k[11:]), k[19:], nil
}

func metaKey(name string) []byte { return append([]byte{spaceMeta}, name...) }

// metaEpoch prefixes the metadata names of the partitions' actor epochs: the
// name is metaEpoch then the partition (be16), the value the epoch (be64).
const metaEpoch = "epoch/"

// epochKey returns the Pebble key of partition p's actor epoch.
func epochKey(p int) []byte { return binary.BigEndian.AppendUint16(metaKey(metaEpoch), uint16(p)) }

// parseEpoch decodes a partition epoch entry (key and value) of a store with q
// partitions.
func parseEpoch(k, v []byte, q int) (p int, epoch uint64, err error) {
	prefix := metaKey(metaEpoch)
	if len(k) != len(prefix)+2 || !bytes.HasPrefix(k, prefix) || len(v) != 8 {
		return 0, 0, fmt.Errorf("storage: malformed partition epoch %q = %x", k, v)
	}
	p = int(binary.BigEndian.Uint16(k[len(prefix):]))
	if p >= q {
		return 0, 0, fmt.Errorf("storage: epoch of partition %d, beyond %d partitions", p, q)
	}
	return p, binary.BigEndian.Uint64(v), nil
}

// checkOwner rejects an owner name that cannot be encoded in a hint key.
func checkOwner(owner string) error {
	if len(owner) < 1 || len(owner) > maxHintOwner {
		return fmt.Errorf("%w: got %d bytes", ErrHintOwner, len(owner))
	}
	return nil
}

// hintKey appends the Pebble key of owner's hint for key. owner must pass checkOwner.
func hintKey(b []byte, owner string, key []byte) []byte {
	b = append(b, spaceHint, byte(len(owner)))
	b = append(b, owner...)
	return append(b, key...)
}

// hintBounds returns the [start, end) range of owner's hints. owner must pass
// checkOwner.
func hintBounds(owner string) (start, end []byte) {
	start = hintKey(nil, owner, nil)
	return start, prefixEnd(start)
}

// prefixEnd returns the smallest key greater than every key starting with prefix.
// prefix must hold a byte below 0xff (every prefix here starts with a space tag).
func prefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	panic("storage: prefixEnd of an all-0xff prefix")
}

// parseHintKey splits a hint key into owner and user key. The user key aliases k.
func parseHintKey(k []byte) (owner string, key []byte, err error) {
	if len(k) < 3 || k[0] != spaceHint || k[1] == 0 || len(k) < 2+int(k[1]) {
		return "", nil, fmt.Errorf("storage: malformed hint key %q", k)
	}
	n := 2 + int(k[1])
	return string(k[2:n]), k[n:], nil
}

// Element keys (issue 20, docs/design/issue20-data-types.md 2.1): a collection
// layer's elements, one Pebble key each, in the same partition and hash as their
// header, so they share its lock stripe and Merkle segment:
//
//	'e' | partition (be16) | hash (be64) | uvarint len(key) | key | type | sub | ehash (be64) | elem
//
// The length prefix keeps key unambiguous whatever the hash collisions; sub 0 is
// the elements themselves (sub > 0 is kept for issue 21's derived indexes, not
// written yet); ehash = xxhash64(elem), so a layer's elements are in hash order,
// as a partition's records are.
const (
	spaceElem = 'e'
	subElem   = 0 // the elements of a layer (sub > 0: derived indexes, issue 21)
)

// layerPrefix appends the prefix of the element keys of key's layer typ: every
// element of the layer, and nothing else, starts with it.
func layerPrefix(b []byte, p int, h uint64, key []byte, typ record.Type) []byte {
	b = append(b, spaceElem)
	b = binary.BigEndian.AppendUint16(b, uint16(p))
	b = binary.BigEndian.AppendUint64(b, h)
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = append(b, key...)
	return append(b, byte(typ), subElem)
}

// elemKey appends the Pebble key of element elem (whose xxhash64 is ehash) of
// key's layer typ.
func elemKey(b []byte, p int, h uint64, key []byte, typ record.Type, ehash uint64, elem []byte) []byte {
	b = layerPrefix(b, p, h, key, typ)
	b = binary.BigEndian.AppendUint64(b, ehash)
	return append(b, elem...)
}

// elemHash is an element's hash, the order of a layer's elements.
func elemHash(elem []byte) uint64 { return xxhash.Sum64(elem) }

// elemBounds returns the [start, end) range of partition p's element keys.
func elemBounds(p int) (start, end []byte) {
	start = binary.BigEndian.AppendUint16([]byte{spaceElem}, uint16(p))
	if p == 0xffff {
		return start, []byte{spaceElem + 1}
	}
	return start, binary.BigEndian.AppendUint16([]byte{spaceElem}, uint16(p+1))
}

// elemParts is a parsed element key. key and elem alias the parsed key.
type elemParts struct {
	p     int
	h     uint64
	key   []byte
	typ   record.Type
	ehash uint64
	elem  []byte
}

// parseElemKey splits an element key. It accepts exactly what elemKey writes
// (a collection type, sub 0, the shortest length varint) and does not check
// that ehash is elem's hash or h the key's: keys are compared, never rehashed.
func parseElemKey(k []byte) (e elemParts, err error) {
	bad := func(why string) (elemParts, error) {
		return elemParts{}, fmt.Errorf("storage: malformed element key %q: %s", k, why)
	}
	if len(k) < dataHeader || k[0] != spaceElem {
		return bad("short or not an element")
	}
	e.p, e.h = int(binary.BigEndian.Uint16(k[1:])), binary.BigEndian.Uint64(k[3:])
	rest := k[dataHeader:]
	n, w := binary.Uvarint(rest)
	switch {
	case w <= 0:
		return bad("key length")
	case w != uvarintLen(n):
		return bad("key length not in its shortest form")
	case n > uint64(len(rest)-w):
		return bad("key past the end")
	}
	rest = rest[w:]
	e.key, rest = rest[:n], rest[n:]
	if len(rest) < 2+8 {
		return bad("short suffix")
	}
	if e.typ = record.Type(rest[0]); !e.typ.Collection() {
		return bad("not a collection type")
	}
	if rest[1] != subElem {
		return bad("unknown sub space")
	}
	e.ehash, e.elem = binary.BigEndian.Uint64(rest[2:]), rest[10:]
	return e, nil
}

// uvarintLen is the length of v's shortest uvarint.
func uvarintLen(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }

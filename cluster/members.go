package cluster

// The ring member set as a CRDT: pure functions, no I/O, goroutines or clocks.
// membership.go is the shell that persists it and spreads it through memberlist.
//
// Binary encoding (integers are minimal uvarints unless stated otherwise):
//
//	member set:  u8 version (1 or 2) | uvarint count | count × member body,
//	             names strictly ascending (byte-wise)
//	one member:  u8 version (1 or 2) | member body       (memberlist node metadata)
//	member body: u8 len | name (1..255 bytes of UTF-8)
//	             u8 state (1 Active, 2 Leaving, 3 Removed)
//	             u64 big-endian IEEE-754 bits of the weight (finite)
//	             uvarint version
//	             5 × (u8 len | string): RESP, memcached, HTTP, gossip, cluster address
//	             version 2 only: u8 len | zone (0..MemberMaxZoneLen bytes, see
//	             memberZoneValid; empty for a member without a zone)
//
// Version 2 is written exactly when a member of the encoding has a zone, so a
// cluster without zones writes, persists and gossips the version 1 bytes that nodes
// before zones wrote and read, and a record persisted by them decodes with Zone "".
// A version 2 encoding in which no member has a zone is refused: it has a version 1
// form, and every valid input has exactly one encoding.
//
// A member's size, its body with the zone field counted only when it has a zone (its
// standalone encoding minus the version byte), is at most MemberMaxEncodedLen bytes,
// so any member fits both memberlist's node metadata and one gossip packet.
// Decoding and re-encoding reproduces the input bytes (the fuzz target checks
// this), which also makes the tie-break of MergeMember well defined.

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"unicode"
	"unicode/utf8"

	"github.com/dynakv/dynakv/ring"
)

// State is a ring member's lifecycle state. States only move forward within one
// version (Active < Leaving < Removed), and Removed is final.
type State uint8

const (
	// StateActive is a member that owns partitions.
	StateActive State = 1
	// StateLeaving is a member handing its partitions off before it leaves; it still
	// owns them until the handoff completes.
	StateLeaving State = 2
	// StateRemoved is a member taken out of the ring for good (by leave or by an
	// administrator). A Removed entry is never replaced by a live one: the name
	// cannot rejoin.
	StateRemoved State = 3
)

// String returns the lower-case name of the state, or "state(N)" for an invalid one.
func (s State) String() string {
	switch s {
	case StateActive:
		return "active"
	case StateLeaving:
		return "leaving"
	case StateRemoved:
		return "removed"
	default:
		return fmt.Sprintf("state(%d)", uint8(s))
	}
}

// valid reports whether s is one of the defined states.
func (s State) valid() bool { return s >= StateActive && s <= StateRemoved }

const (
	// MemberMaxEncodedLen bounds the encoded size of one member body (and of a
	// member's node metadata): memberlist's metadata limit, 512 bytes.
	MemberMaxEncodedLen = 512
	// MemberMaxStringLen bounds the length of a member's name and of each address.
	MemberMaxStringLen = 255
	// MemberMaxZoneLen bounds the length of a member's zone. 64 bytes names any
	// rack, availability zone or data center ("eu-central-1a", "dc2/rack17") and
	// keeps a member with the longest name and typical addresses well within
	// MemberMaxEncodedLen.
	MemberMaxZoneLen = 64
	// MembersMaxRing bounds the entries of a member set that are not Removed: the
	// ring members. 1024 is what a real cluster needs with room to spare (Dynamo
	// runs hundreds of nodes per ring; one gossip cluster of thousands is past
	// what SWIM's full-membership view is meant for), and it bounds a ring
	// rebuild, which holds partitions × members names: 16 MiB at the default
	// 1024 partitions, instead of the ~270 MB a peer could make it allocate
	// before.
	MembersMaxRing = 1 << 10
	// MembersMaxCount bounds all entries, Removed ones included: removal is final,
	// so a cluster's removed names accumulate over its life, and they get four
	// times the room of the ring. It also bounds the frame the set travels in:
	// at MemberMaxEncodedLen per entry an encoded set is at most
	// MembersMaxEncodedLen (2 MiB), a tenth of memberlist's 20 MiB push/pull
	// limit, which also carries memberlist's own node list.
	MembersMaxCount = 4 * MembersMaxRing
	// MembersMaxEncodedLen bounds a member set's encoding: version, count and
	// MembersMaxCount entries of MemberMaxEncodedLen, plus the empty zone field of
	// each in version 2. DecodeMembers refuses anything longer before reading it.
	MembersMaxEncodedLen = 1 + 3 + MembersMaxCount*(MemberMaxEncodedLen+1)

	// memberCodecVersion is the first byte of an encoding without zones, the only
	// one before zones; memberCodecZones that of an encoding with zones.
	memberCodecVersion = 1
	memberCodecZones   = 2
	// memberFixedLen is the size of a member body's fixed-width fields: the name
	// length byte, the state, the weight and the five address length bytes; the
	// version uvarint adds 1 to 10.
	memberFixedLen = 1 + 1 + 8 + 5
)

// ErrMemberEncoding reports a malformed member or member set encoding.
var ErrMemberEncoding = errors.New("cluster: malformed member encoding")

// ErrMembersFull reports a member set that would exceed MembersMaxCount entries or
// MembersMaxRing entries not Removed.
var ErrMembersFull = errors.New("cluster: member set full")

// Member is one entry of the ring member set.
type Member struct {
	// Name identifies the member in the ring, in memberlist and in the internode
	// transport's handshake: 1 to MemberMaxStringLen bytes of UTF-8.
	Name string
	// State is the member's lifecycle state.
	State State
	// Weight is the member's ring weight; <= 0 means 1. It must be finite.
	Weight float64
	// Zone is the failure domain the member is in (a rack, availability zone or
	// data center), which ring/ spreads every partition's replicas over; "" means
	// none, and members without a zone are in one zone together. At most
	// MemberMaxZoneLen bytes of UTF-8 with no spaces or control characters. Like
	// the addresses, it changes only with a new Version.
	Zone string
	// Version is the Lamport version of this entry: every change to it increments
	// the version it replaces, and the higher version wins a merge.
	Version uint64
	// RESPAddr, MemcacheAddr and HTTPAddr are the client-facing addresses
	// ("host:port", empty when disabled).
	RESPAddr, MemcacheAddr, HTTPAddr string
	// GossipAddr is the memberlist address other nodes join through.
	GossipAddr string
	// ClusterAddr is the internode transport address.
	ClusterAddr string
}

// Members is a member set keyed by name. Every value's Name equals its key.
// A nil Members is an empty set for reading; Merge needs a non-nil map.
type Members map[string]Member

// memberRemoved is 1 for a Removed member and 0 otherwise: the first key of the
// merge order, which makes Removed absorbing.
func memberRemoved(m Member) int {
	if m.State == StateRemoved {
		return 1
	}
	return 0
}

// memberCompare is the total order MergeMember takes the maximum of: Removed
// first, then Version, then State, then the encoding byte-wise.
func memberCompare(a, b Member) int {
	if c := cmp.Compare(memberRemoved(a), memberRemoved(b)); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Version, b.Version); c != 0 {
		return c
	}
	if c := cmp.Compare(a.State, b.State); c != 0 {
		return c
	}
	// Compare the bodies with the zone field: bodies are self-delimiting, so for
	// members without zones the order is that of their version 1 bodies.
	var ab, bb [MemberMaxEncodedLen + 1]byte
	return bytes.Compare(appendMemberBody(ab[:0], a, true), appendMemberBody(bb[:0], b, true))
}

// memberEqual reports whether a and b encode identically (it compares weights by
// their bits, so -0 and 0 differ, as they do on the wire).
func memberEqual(a, b Member) bool {
	return a.Name == b.Name && a.State == b.State &&
		math.Float64bits(a.Weight) == math.Float64bits(b.Weight) &&
		a.Version == b.Version && a.RESPAddr == b.RESPAddr &&
		a.MemcacheAddr == b.MemcacheAddr && a.HTTPAddr == b.HTTPAddr &&
		a.GossipAddr == b.GossipAddr && a.ClusterAddr == b.ClusterAddr && a.Zone == b.Zone
}

// MergeMember returns the winner of two entries for the same member: a Removed entry
// beats any other (removal is final, even against a node that restarted and bumped
// its version before hearing of it); otherwise the higher Version wins; at equal
// versions the higher State (Removed > Leaving > Active); then the byte-wise greater
// encoding, so distinct entries never tie. MergeMember is the maximum of a total
// order and is therefore commutative, associative and idempotent.
//
// Removed being absorbing refines the plain "higher version wins" rule: without it a
// dead node that restarted twice before learning of its removal would outvote it.
func MergeMember(a, b Member) Member {
	if memberCompare(a, b) >= 0 {
		return a
	}
	return b
}

// Merge merges every entry of o into m in place and returns the names whose entry in
// m changed, sorted. Entries are matched by their Name; entries with an empty Name
// are ignored. Merge is commutative, associative and idempotent as an operation on
// sets within the bounds: a new name that would take m past MembersMaxCount
// entries, or past MembersMaxRing entries not Removed, is left out (see merge).
func (m Members) Merge(o Members) (changed []string) {
	changed, _ = m.merge(o, true)
	return changed
}

// wouldChange reports whether Merge(o) would change m, without changing it, and
// which new names the bounds would leave out.
func (m Members) wouldChange(o Members) (bool, []string) {
	changed, refused := m.merge(o, false)
	return len(changed) > 0, refused
}

// merge is Merge, applied to m only with apply, also returning the new names the
// bounds left out. The entries of names m has are merged first (a removal may make
// room), then the new names in name order, each admitted while the bounds allow:
// so at the bounds the outcome depends only on m and o.
func (m Members) merge(o Members, apply bool) (changed, refused []string) {
	total, ring := len(m), 0
	for _, a := range m {
		if a.State != StateRemoved {
			ring++
		}
	}
	var fresh []string
	for _, b := range o {
		if b.Name == "" {
			continue
		}
		a, ok := m[b.Name]
		if !ok {
			fresh = append(fresh, b.Name)
			continue
		}
		if w := MergeMember(a, b); !memberEqual(w, a) {
			if a.State != StateRemoved && w.State == StateRemoved {
				ring--
			}
			if apply {
				m[b.Name] = w
			}
			changed = append(changed, b.Name)
		}
	}
	slices.Sort(fresh)
	for _, name := range fresh {
		b := o[name]
		if total >= MembersMaxCount || b.State != StateRemoved && ring >= MembersMaxRing {
			refused = append(refused, name)
			continue
		}
		total++
		if b.State != StateRemoved {
			ring++
		}
		if apply {
			m[name] = b
		}
		changed = append(changed, name)
	}
	slices.Sort(changed)
	return changed, refused
}

// checkBounds reports a set past MembersMaxCount entries or MembersMaxRing entries
// not Removed.
func (m Members) checkBounds() error {
	ring := 0
	for _, mb := range m {
		if mb.State != StateRemoved {
			ring++
		}
	}
	if len(m) > MembersMaxCount || ring > MembersMaxRing {
		return fmt.Errorf("%w: %d members (%d not removed), more than %d (%d)",
			ErrMembersFull, len(m), ring, MembersMaxCount, MembersMaxRing)
	}
	return nil
}

// Clone returns a copy of m (nil for nil).
func (m Members) Clone() Members {
	if m == nil {
		return nil
	}
	c := make(Members, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// Names returns the names of m's entries, sorted.
func (m Members) Names() []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// Ring returns the ring of m's Active members, with their weights and zones, over
// partitions partitions. A
// Leaving member owns nothing: its partitions already belong to the members that
// will hold them once it is gone, which read and write them while it pushes its
// copies to them (repair's partition handoff); with N >= 2 the other previous
// owners still hold every key meanwhile. Errors are ring.New's.
func (m Members) Ring(partitions int) (*ring.Ring, error) {
	rm := make([]ring.Member, 0, len(m))
	for _, mb := range m {
		if mb.State == StateActive {
			rm = append(rm, ring.Member{Name: mb.Name, Weight: mb.Weight, Zone: mb.Zone})
		}
	}
	return ring.New(partitions, rm)
}

// AppendBinary appends the encoding of the member set to b and returns the extended
// buffer. Entries are written in name order, so equal sets encode equally; the
// version is 2 if a member has a zone, else 1.
func (m Members) AppendBinary(b []byte) []byte {
	zones := false
	for _, mb := range m {
		zones = zones || mb.Zone != ""
	}
	b = append(b, memberCodec(zones))
	b = binary.AppendUvarint(b, uint64(len(m)))
	for _, name := range m.Names() {
		b = appendMemberBody(b, m[name], zones)
	}
	return b
}

// memberCodec returns the version byte of an encoding with or without zones.
func memberCodec(zones bool) byte {
	if zones {
		return memberCodecZones
	}
	return memberCodecVersion
}

// memberCodecOf returns whether an encoding whose first byte is b[0] has zones.
func memberCodecOf(b []byte) (zones bool, err error) {
	switch {
	case len(b) > 0 && b[0] == memberCodecVersion:
		return false, nil
	case len(b) > 0 && b[0] == memberCodecZones:
		return true, nil
	default:
		return false, fmt.Errorf("%w: unknown version", ErrMemberEncoding)
	}
}

// DecodeMembers decodes a member set encoded by Members.AppendBinary, by this
// version or the one before zones. It validates strictly (at most
// MembersMaxEncodedLen bytes, at most MembersMaxCount entries of which at most
// MembersMaxRing not Removed, bounded lengths, valid states, finite weights, valid
// zones, version 2 only with a zone in it, names strictly ascending, minimal
// uvarints, no trailing bytes) and returns an error wrapping ErrMemberEncoding for
// anything else; it never panics. The result never aliases b.
func DecodeMembers(b []byte) (Members, error) {
	if len(b) > MembersMaxEncodedLen {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrMemberEncoding, len(b), MembersMaxEncodedLen)
	}
	zones, err := memberCodecOf(b)
	if err != nil {
		return nil, err
	}
	n, rest, err := memberUvarint(b[1:], "count")
	if err != nil {
		return nil, err
	}
	if n > MembersMaxCount {
		return nil, fmt.Errorf("%w: %d members, more than %d", ErrMemberEncoding, n, MembersMaxCount)
	}
	// Size the map by what the input can hold, not by what it claims.
	m := make(Members, min(int(n), len(rest)/(memberFixedLen+2)))
	prev := ""
	ring := 0
	zoned := false // a member has a zone
	for i := range int(n) {
		var mb Member
		if mb, rest, err = decodeMemberBody(rest, zones); err != nil {
			return nil, err
		}
		zoned = zoned || mb.Zone != ""
		if i > 0 && mb.Name <= prev {
			return nil, fmt.Errorf("%w: names not strictly ascending at %q", ErrMemberEncoding, mb.Name)
		}
		if mb.State != StateRemoved {
			if ring++; ring > MembersMaxRing {
				return nil, fmt.Errorf("%w: more than %d members not removed", ErrMemberEncoding, MembersMaxRing)
			}
		}
		prev = mb.Name
		m[mb.Name] = mb
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrMemberEncoding, len(rest))
	}
	if zones && !zoned {
		return nil, fmt.Errorf("%w: version 2 without a zone", ErrMemberEncoding)
	}
	return m, nil
}

// AppendBinary appends the standalone encoding of one member (the node metadata
// memberlist carries) to b and returns the extended buffer: version 2 if it has a
// zone, else 1.
func (m Member) AppendBinary(b []byte) []byte {
	zones := m.Zone != ""
	return appendMemberBody(append(b, memberCodec(zones)), m, zones)
}

// DecodeMember decodes one member encoded by Member.AppendBinary, with the same
// strictness as DecodeMembers.
func DecodeMember(b []byte) (Member, error) {
	zones, err := memberCodecOf(b)
	if err != nil {
		return Member{}, err
	}
	m, rest, err := decodeMemberBody(b[1:], zones)
	if err != nil {
		return Member{}, err
	}
	if len(rest) != 0 {
		return Member{}, fmt.Errorf("%w: %d trailing bytes", ErrMemberEncoding, len(rest))
	}
	if zones && m.Zone == "" {
		return Member{}, fmt.Errorf("%w: version 2 without a zone", ErrMemberEncoding)
	}
	return m, nil
}

// memberEncodedLen returns the size of m: its member body, with the zone field
// only if it has a zone. That is its standalone encoding minus the version byte;
// in a version 2 set, the body of a member without a zone is one byte longer.
func memberEncodedLen(m Member) int {
	n := memberFixedLen + len(m.Name) + memberUvarintLen(m.Version) +
		len(m.RESPAddr) + len(m.MemcacheAddr) + len(m.HTTPAddr) + len(m.GossipAddr) + len(m.ClusterAddr)
	if m.Zone != "" {
		n += 1 + len(m.Zone)
	}
	return n
}

// CheckZone returns an error that says what a valid zone is when zone is not one
// (see Member.Zone); node/ checks --zone with it.
func CheckZone(zone string) error {
	if !memberZoneValid(zone) {
		return fmt.Errorf("zone %q: a zone is at most %d bytes of UTF-8, printable, without spaces", zone, MemberMaxZoneLen)
	}
	return nil
}

// memberZoneValid reports whether zone is a valid member zone: empty, or at most
// MemberMaxZoneLen bytes of UTF-8 of printable characters other than spaces, so it
// is one token on a command line, in a RESP reply and in a status table.
func memberZoneValid(zone string) bool {
	if len(zone) > MemberMaxZoneLen || !utf8.ValidString(zone) {
		return false
	}
	for _, r := range zone {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return false
		}
	}
	return true
}

// memberValidate checks what the decoder checks, for an entry built in memory:
// a non-empty name, strings within MemberMaxStringLen, a valid state, a finite
// weight, a valid zone, and a standalone encoding (its node metadata) within
// MemberMaxEncodedLen even at the largest version.
func memberValidate(m Member) error {
	switch {
	case m.Name == "":
		return fmt.Errorf("cluster: member has an empty name")
	case !utf8.ValidString(m.Name):
		return fmt.Errorf("cluster: member name %q is not valid UTF-8", m.Name)
	case !m.State.valid():
		return fmt.Errorf("cluster: member %q has invalid state %d", m.Name, uint8(m.State))
	case math.IsNaN(m.Weight) || math.IsInf(m.Weight, 0):
		return fmt.Errorf("cluster: member %q has weight %v; it must be finite", m.Name, m.Weight)
	case !memberZoneValid(m.Zone):
		return fmt.Errorf("cluster: member %q has zone %q; a zone is at most %d bytes of UTF-8, printable, without spaces",
			m.Name, m.Zone, MemberMaxZoneLen)
	}
	for _, s := range [...]string{m.Name, m.RESPAddr, m.MemcacheAddr, m.HTTPAddr, m.GossipAddr, m.ClusterAddr} {
		if len(s) > MemberMaxStringLen {
			return fmt.Errorf("cluster: member %q: %q is longer than %d bytes", m.Name, s, MemberMaxStringLen)
		}
	}
	// Its node metadata is its standalone encoding: the version byte and the
	// body, which together must fit memberlist's limit, so the body is one byte
	// shorter than MemberMaxEncodedLen (a longer one would make NodeMeta
	// gossip nothing).
	big := m
	big.Version = math.MaxUint64
	if n := 1 + memberEncodedLen(big); n > MemberMaxEncodedLen {
		return fmt.Errorf("cluster: member %q encodes to %d bytes, more than memberlist's %d-byte metadata limit; shorten its name, addresses or zone",
			m.Name, n, MemberMaxEncodedLen)
	}
	return nil
}

// appendMemberBody appends m's member body, with the zone field if zones (version 2).
// Strings longer than MemberMaxStringLen are not representable; memberValidate keeps
// them out (and zones longer than MemberMaxZoneLen), and here they are cut so the
// encoder never writes a corrupt length.
func appendMemberBody(b []byte, m Member, zones bool) []byte {
	b = appendMemberString(b, m.Name)
	b = append(b, byte(m.State))
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(m.Weight))
	b = binary.AppendUvarint(b, m.Version)
	for _, s := range [...]string{m.RESPAddr, m.MemcacheAddr, m.HTTPAddr, m.GossipAddr, m.ClusterAddr} {
		b = appendMemberString(b, s)
	}
	if zones {
		b = appendMemberString(b, m.Zone)
	}
	return b
}

func appendMemberString(b []byte, s string) []byte {
	s = s[:min(len(s), MemberMaxStringLen)]
	return append(append(b, byte(len(s))), s...)
}

// decodeMemberBody decodes one member body from the front of b, with a zone field
// if zones (version 2), and returns the rest.
func decodeMemberBody(b []byte, zones bool) (Member, []byte, error) {
	var m Member
	var err error
	if m.Name, b, err = memberString(b, "name"); err != nil {
		return Member{}, nil, err
	}
	if m.Name == "" || !utf8.ValidString(m.Name) {
		return Member{}, nil, fmt.Errorf("%w: empty or non-UTF-8 name %q", ErrMemberEncoding, m.Name)
	}
	if len(b) < 9 {
		return Member{}, nil, fmt.Errorf("%w: member %q truncated", ErrMemberEncoding, m.Name)
	}
	m.State = State(b[0])
	if !m.State.valid() {
		return Member{}, nil, fmt.Errorf("%w: member %q has invalid state %d", ErrMemberEncoding, m.Name, b[0])
	}
	m.Weight = math.Float64frombits(binary.BigEndian.Uint64(b[1:9]))
	if math.IsNaN(m.Weight) || math.IsInf(m.Weight, 0) {
		return Member{}, nil, fmt.Errorf("%w: member %q has weight %v", ErrMemberEncoding, m.Name, m.Weight)
	}
	if m.Version, b, err = memberUvarint(b[9:], "version"); err != nil {
		return Member{}, nil, err
	}
	for _, f := range [...]struct {
		dst  *string
		name string
	}{
		{&m.RESPAddr, "resp address"},
		{&m.MemcacheAddr, "memcache address"},
		{&m.HTTPAddr, "http address"},
		{&m.GossipAddr, "gossip address"},
		{&m.ClusterAddr, "cluster address"},
	} {
		if *f.dst, b, err = memberString(b, f.name); err != nil {
			return Member{}, nil, err
		}
	}
	if zones {
		if m.Zone, b, err = memberString(b, "zone"); err != nil {
			return Member{}, nil, err
		}
		if !memberZoneValid(m.Zone) {
			return Member{}, nil, fmt.Errorf("%w: member %q has invalid zone %q", ErrMemberEncoding, m.Name, m.Zone)
		}
	}
	if n := memberEncodedLen(m); n > MemberMaxEncodedLen {
		return Member{}, nil, fmt.Errorf("%w: member %q is %d bytes, more than %d", ErrMemberEncoding, m.Name, n, MemberMaxEncodedLen)
	}
	return m, b, nil
}

// memberString decodes a u8-length-prefixed string.
func memberString(b []byte, field string) (string, []byte, error) {
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		return "", nil, fmt.Errorf("%w: %s truncated", ErrMemberEncoding, field)
	}
	n := int(b[0])
	return string(b[1 : 1+n]), b[1+n:], nil
}

// memberUvarint decodes a minimal uvarint.
func memberUvarint(b []byte, field string) (uint64, []byte, error) {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, nil, fmt.Errorf("%w: %s truncated or overflows", ErrMemberEncoding, field)
	}
	if n != memberUvarintLen(v) {
		return 0, nil, fmt.Errorf("%w: %s is not minimally encoded", ErrMemberEncoding, field)
	}
	return v, b[n:], nil
}

// memberUvarintLen is the length of the minimal uvarint encoding of v.
func memberUvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

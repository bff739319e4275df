package cluster

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// memberTestGen draws members from small domains so that equal names, equal versions
// and equal states (the tie-breaks) are common.
func memberTestGen(r *rand.Rand) Member {
	names := []string{"a", "b", "c"}
	weights := []float64{0, math.Copysign(0, -1), 1, 2, 0.5, -1}
	addrs := []string{"", "127.0.0.1:1", "127.0.0.1:2", "[::1]:3"}
	zones := []string{"", "", "a", "us-east-1a"}
	return Member{
		Name:         names[r.IntN(len(names))],
		State:        State(1 + r.IntN(3)),
		Weight:       weights[r.IntN(len(weights))],
		Version:      uint64(r.IntN(4)),
		RESPAddr:     addrs[r.IntN(len(addrs))],
		MemcacheAddr: addrs[r.IntN(len(addrs))],
		HTTPAddr:     addrs[r.IntN(len(addrs))],
		GossipAddr:   addrs[r.IntN(len(addrs))],
		ClusterAddr:  addrs[r.IntN(len(addrs))],
		Zone:         zones[r.IntN(len(zones))],
	}
}

func memberTestGenSet(r *rand.Rand) Members {
	m := Members{}
	for range r.IntN(5) {
		mb := memberTestGen(r)
		m[mb.Name] = mb
	}
	return m
}

func membersTestEqual(a, b Members) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !memberEqual(v, w) {
			return false
		}
	}
	return true
}

func TestMemberStateString(t *testing.T) {
	for s, want := range map[State]string{
		StateActive: "active", StateLeaving: "leaving", StateRemoved: "removed",
		0: "state(0)", 9: "state(9)",
	} {
		if got := s.String(); got != want {
			t.Errorf("State(%d).String() = %q, want %q", uint8(s), got, want)
		}
	}
}

func TestMergeMemberTable(t *testing.T) {
	base := Member{Name: "n1", State: StateActive, Weight: 1, Version: 5, RESPAddr: "127.0.0.1:6379"}
	with := func(f func(*Member)) Member { m := base; f(&m); return m }
	for _, tc := range []struct {
		name string
		a, b Member
		want Member
	}{
		{"higher version wins", base, with(func(m *Member) { m.Version = 6; m.RESPAddr = "x" }),
			with(func(m *Member) { m.Version = 6; m.RESPAddr = "x" })},
		{"higher version wins over higher state", with(func(m *Member) { m.State = StateLeaving }),
			with(func(m *Member) { m.Version = 6 }), with(func(m *Member) { m.Version = 6 })},
		{"equal version: leaving beats active", base, with(func(m *Member) { m.State = StateLeaving }),
			with(func(m *Member) { m.State = StateLeaving })},
		{"equal version: removed beats leaving", with(func(m *Member) { m.State = StateLeaving }),
			with(func(m *Member) { m.State = StateRemoved }), with(func(m *Member) { m.State = StateRemoved })},
		{"removed is final against a higher version", with(func(m *Member) { m.State = StateRemoved }),
			with(func(m *Member) { m.Version = 9 }), with(func(m *Member) { m.State = StateRemoved })},
		{"two removed: higher version", with(func(m *Member) { m.State = StateRemoved; m.Version = 7 }),
			with(func(m *Member) { m.State = StateRemoved }), with(func(m *Member) { m.State = StateRemoved; m.Version = 7 })},
		{"full tie: greater encoding", with(func(m *Member) { m.RESPAddr = "a" }), with(func(m *Member) { m.RESPAddr = "b" }),
			with(func(m *Member) { m.RESPAddr = "b" })},
		{"a zone change travels with the version", base, with(func(m *Member) { m.Version = 6; m.Zone = "dc2" }),
			with(func(m *Member) { m.Version = 6; m.Zone = "dc2" })},
		{"dropping a zone travels with the version", with(func(m *Member) { m.Zone = "dc2" }),
			with(func(m *Member) { m.Version = 6 }), with(func(m *Member) { m.Version = 6 })},
		{"full tie: zone breaks it", with(func(m *Member) { m.Zone = "a" }), with(func(m *Member) { m.Zone = "b" }),
			with(func(m *Member) { m.Zone = "b" })},
		{"full tie: a zone beats none", base, with(func(m *Member) { m.Zone = "a" }), with(func(m *Member) { m.Zone = "a" })},
		{"identical", base, base, base},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, got := range []Member{MergeMember(tc.a, tc.b), MergeMember(tc.b, tc.a)} {
				if !memberEqual(got, tc.want) {
					t.Errorf("got %+v, want %+v", got, tc.want)
				}
			}
		})
	}
}

func TestMergeMemberLaws(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		a, b, c := memberTestGen(r), memberTestGen(r), memberTestGen(r)
		b.Name, c.Name = a.Name, a.Name
		if got := MergeMember(a, a); !memberEqual(got, a) {
			t.Fatalf("iteration %d: not idempotent: %+v -> %+v", i, a, got)
		}
		if ab, ba := MergeMember(a, b), MergeMember(b, a); !memberEqual(ab, ba) {
			t.Fatalf("iteration %d: not commutative:\n a=%+v\n b=%+v\n ab=%+v\n ba=%+v", i, a, b, ab, ba)
		}
		l, rr := MergeMember(MergeMember(a, b), c), MergeMember(a, MergeMember(b, c))
		if !memberEqual(l, rr) {
			t.Fatalf("iteration %d: not associative:\n a=%+v\n b=%+v\n c=%+v", i, a, b, c)
		}
		if w := MergeMember(a, b); !memberEqual(w, a) && !memberEqual(w, b) {
			t.Fatalf("iteration %d: merge invented %+v", i, w)
		}
	}
}

func TestMembersMergeLaws(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	merged := func(sets ...Members) Members {
		out := Members{}
		for _, s := range sets {
			out.Merge(s)
		}
		return out
	}
	for i := range 2000 {
		a, b, c := memberTestGenSet(r), memberTestGenSet(r), memberTestGenSet(r)
		if got := merged(a, a); !membersTestEqual(got, a) {
			t.Fatalf("iteration %d: not idempotent", i)
		}
		if ab, ba := merged(a, b), merged(b, a); !membersTestEqual(ab, ba) {
			t.Fatalf("iteration %d: not commutative:\n a=%v\n b=%v", i, a, b)
		}
		if l, rr := merged(merged(a, b), c), merged(a, merged(b, c)); !membersTestEqual(l, rr) {
			t.Fatalf("iteration %d: not associative", i)
		}
		// changed names exactly the entries that differ, and wouldChange agrees.
		m := a.Clone()
		would, _ := m.wouldChange(b)
		changed := m.Merge(b)
		var want []string
		for _, name := range m.Names() {
			if old, ok := a[name]; !ok || !memberEqual(old, m[name]) {
				want = append(want, name)
			}
		}
		if !slices.Equal(changed, want) {
			t.Fatalf("iteration %d: changed = %v, want %v", i, changed, want)
		}
		if would != (len(changed) > 0) {
			t.Fatalf("iteration %d: wouldChange = %v, changed = %v", i, would, changed)
		}
		if again := m.Merge(b); len(again) != 0 {
			t.Fatalf("iteration %d: second merge changed %v", i, again)
		}
	}
}

func TestMembersCloneIsDeep(t *testing.T) {
	a := Members{"x": {Name: "x", State: StateActive, Version: 1}}
	c := a.Clone()
	c["x"] = Member{Name: "x", State: StateRemoved, Version: 2}
	c["y"] = Member{Name: "y", State: StateActive}
	if a["x"].State != StateActive || len(a) != 1 {
		t.Fatalf("Clone shares storage: %v", a)
	}
	if Members(nil).Clone() != nil {
		t.Fatal("nil.Clone() != nil")
	}
}

// TestMergeTieBreakWithoutZones: the tie-break compares bodies with the zone field,
// which for members without zones orders them exactly as their version 1 bodies did,
// so nodes with and without this version agree on merges of zone-less entries.
func TestMergeTieBreakWithoutZones(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for i := range 5000 {
		a, b := memberTestGen(r), memberTestGen(r)
		a.Zone, b.Zone = "", ""
		v1 := bytes.Compare(appendMemberBody(nil, a, false), appendMemberBody(nil, b, false))
		v2 := bytes.Compare(appendMemberBody(nil, a, true), appendMemberBody(nil, b, true))
		if v1 != v2 {
			t.Fatalf("iteration %d: %+v vs %+v: version 1 bodies compare %d, with zones %d", i, a, b, v1, v2)
		}
	}
}

func TestMembersRing(t *testing.T) {
	m := Members{
		"a": {Name: "a", State: StateActive, Weight: 1, Version: 1, Zone: "z1"},
		"b": {Name: "b", State: StateLeaving, Weight: 2, Version: 3, Zone: "z2"},
		"c": {Name: "c", State: StateRemoved, Weight: 1, Version: 2, Zone: "z3"},
		"d": {Name: "d", State: StateActive, Weight: 0, Version: 1},
	}
	r, err := m.Ring(64)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, rm := range r.Members() {
		names = append(names, rm.Name)
		if rm.Name == "d" && rm.Weight != 1 {
			t.Errorf("member %s has weight %v", rm.Name, rm.Weight)
		}
	}
	if !slices.Equal(names, []string{"a", "d"}) {
		t.Fatalf("ring members = %v, want [a d]: leaving and removed members own nothing", names)
	}
	if za, _ := r.Zone("a"); za != "z1" || !slices.Equal(r.Zones(), []string{"", "z1"}) {
		t.Fatalf("ring zones: a in %q, zones %q; want z1 and [\"\" z1]", za, r.Zones())
	}
	if _, err := m.Ring(3); err == nil {
		t.Fatal("Ring(3) accepted a partition count that is not a power of two")
	}
	empty, err := Members(nil).Ring(8)
	if err != nil || empty.Len() != 0 {
		t.Fatalf("empty ring: %v, %v", empty, err)
	}
}

func TestMemberCodecRoundTrip(t *testing.T) {
	full := Member{
		Name: "node-1", State: StateLeaving, Weight: 2.5, Version: 1 << 40,
		RESPAddr: "10.0.0.1:6379", MemcacheAddr: "10.0.0.1:11211", HTTPAddr: "10.0.0.1:9121",
		GossipAddr: "10.0.0.1:7946", ClusterAddr: "10.0.0.1:7947",
	}
	zoned := full
	zoned.Zone = "eu-central-1a"
	for _, m := range []Members{
		{},
		{"a": {Name: "a", State: StateActive}},
		{"node-1": full, "node-2": {Name: "node-2", State: StateRemoved, Weight: math.Copysign(0, -1), Version: 127}},
		{"node-1": zoned, "node-2": {Name: "node-2", State: StateActive, Weight: 1, Version: 2}},
		{"node-1": zoned, "node-2": {Name: "node-2", State: StateActive, Zone: strings.Repeat("z", MemberMaxZoneLen)}},
	} {
		enc := m.AppendBinary([]byte("prefix"))
		if !bytes.HasPrefix(enc, []byte("prefix")) {
			t.Fatal("AppendBinary dropped the prefix")
		}
		got, err := DecodeMembers(enc[len("prefix"):])
		if err != nil {
			t.Fatalf("DecodeMembers(%v): %v", m, err)
		}
		if !membersTestEqual(got, m) {
			t.Fatalf("round trip: got %v, want %v", got, m)
		}
	}
	for _, mb := range []Member{full, zoned} {
		got, err := DecodeMember(mb.AppendBinary(nil))
		if err != nil || !memberEqual(got, mb) {
			t.Fatalf("DecodeMember round trip: %+v, %v", got, err)
		}
	}
}

// TestMemberCodecCompat: records written before zones (the persisted member set, a
// gossiped set, node metadata) decode with Zone "", and a set without zones still
// encodes to exactly those bytes, so nodes of the previous version read it. A zone
// switches to version 2, which they refuse.
func TestMemberCodecCompat(t *testing.T) {
	// Written by the encoder of commit dc9e5a9, before zones.
	const (
		oldSet = "0103026e31013ff0000000000000030d31302e302e302e313a3633373900000d31302e302e302e313a37" +
			"3934360d31302e302e302e313a37393437026e32024000000000000000c80100000d31302e302e302e32" +
			"3a393132310000026e33030000000000000000070000000000"
		oldMeta = "01026e31013ff0000000000000030d31302e302e302e313a3633373900000d31302e302e302e313a3739" +
			"34360d31302e302e302e313a37393437"
	)
	want := Members{
		"n1": {Name: "n1", State: StateActive, Weight: 1, Version: 3, RESPAddr: "10.0.0.1:6379",
			GossipAddr: "10.0.0.1:7946", ClusterAddr: "10.0.0.1:7947"},
		"n2": {Name: "n2", State: StateLeaving, Weight: 2, Version: 200, HTTPAddr: "10.0.0.2:9121"},
		"n3": {Name: "n3", State: StateRemoved, Version: 7},
	}
	set, _ := hex.DecodeString(oldSet)
	meta, _ := hex.DecodeString(oldMeta)
	got, err := DecodeMembers(set)
	if err != nil || !membersTestEqual(got, want) {
		t.Fatalf("DecodeMembers(old set) = %v, %v; want %v", got, err, want)
	}
	if enc := want.AppendBinary(nil); !bytes.Equal(enc, set) {
		t.Fatalf("a set without zones encodes to\n%x\nnot the old\n%x", enc, set)
	}
	one, err := DecodeMember(meta)
	if err != nil || !memberEqual(one, want["n1"]) {
		t.Fatalf("DecodeMember(old metadata) = %+v, %v", one, err)
	}
	if enc := want["n1"].AppendBinary(nil); !bytes.Equal(enc, meta) {
		t.Fatalf("a member without a zone encodes to %x, not the old %x", enc, meta)
	}
	zoned := want.Clone()
	n3 := zoned["n3"]
	n3.Zone = "dc1"
	zoned["n3"] = n3
	enc := zoned.AppendBinary(nil)
	if enc[0] != memberCodecZones {
		t.Fatalf("a set with a zone encodes with version %d", enc[0])
	}
	if got, err := DecodeMembers(enc); err != nil || !membersTestEqual(got, zoned) {
		t.Fatalf("round trip of a zoned set: %v, %v", got, err)
	}
	if enc := n3.AppendBinary(nil); enc[0] != memberCodecZones {
		t.Fatalf("a member with a zone encodes with version %d", enc[0])
	}
}

func TestDecodeMembersRejectsMalformed(t *testing.T) {
	good := Members{
		"a": {Name: "a", State: StateActive, Weight: 1, Version: 1},
		"b": {Name: "b", State: StateActive, Weight: 1, Version: 1},
	}.AppendBinary(nil)
	one := func(m Member) []byte { return Members{m.Name: m}.AppendBinary(nil) }
	// bodyOf hand-builds a one-member set from raw body bytes.
	bodyOf := func(body ...byte) []byte { return append([]byte{memberCodecVersion, 1}, body...) }
	long := strings.Repeat("x", 120)
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"bad version", append([]byte{3}, good[1:]...)},
		{"version 2 without zone fields", append([]byte{memberCodecZones}, good[1:]...)},
		{"version 2 without a zone", append([]byte{memberCodecZones, 1}, appendMemberBody(nil, Member{Name: "a", State: 1}, true)...)},
		{"zone too long", zoneBody(strings.Repeat("z", MemberMaxZoneLen+1))},
		{"zone with a space", zoneBody("dc 1")},
		{"zone with a newline", zoneBody("dc1\n")},
		{"zone with a NUL", zoneBody("dc\x001")},
		{"zone not UTF-8", zoneBody("dc\xff")},
		{"zone truncated", zoneBody("dc1")[:len(zoneBody("dc1"))-1]},
		{"member with zone over 512 bytes", zoneBody(strings.Repeat("z", MemberMaxZoneLen),
			func(m *Member) { m.Name, m.RESPAddr, m.MemcacheAddr, m.HTTPAddr = long, long, long, long[:100] })},
		{"truncated count", []byte{memberCodecVersion}},
		{"count too large", []byte{memberCodecVersion, 0xff, 0xff, 0x03}},
		{"count exceeds entries", []byte{memberCodecVersion, 3}},
		{"trailing byte", append(bytes.Clone(good), 0)},
		{"truncated", good[:len(good)-1]},
		{"non-minimal count", []byte{memberCodecVersion, 0x80, 0x00}},
		{"empty name", bodyOf(0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0)},
		{"non-UTF-8 name", bodyOf(1, 0xff, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0)},
		{"state 0", bodyOf(1, 'a', 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0)},
		{"state 4", bodyOf(1, 'a', 4, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0)},
		{"NaN weight", one(Member{Name: "a", State: StateActive, Weight: math.NaN()})},
		{"infinite weight", one(Member{Name: "a", State: StateActive, Weight: math.Inf(1)})},
		{"non-minimal version", bodyOf(1, 'a', 1, 0, 0, 0, 0, 0, 0, 0, 0, 0x81, 0x00, 0, 0, 0, 0, 0)},
		{"overflowing version", bodyOf(1, 'a', 1, 0, 0, 0, 0, 0, 0, 0, 0,
			0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0, 0, 0, 0)},
		{"address truncated", bodyOf(1, 'a', 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 5, 'x')},
		{"names out of order", append([]byte{memberCodecVersion, 2},
			append(appendMemberBody(nil, Member{Name: "b", State: 1}, false), appendMemberBody(nil, Member{Name: "a", State: 1}, false)...)...)},
		{"duplicate names", append([]byte{memberCodecVersion, 2},
			append(appendMemberBody(nil, Member{Name: "a", State: 1}, false), appendMemberBody(nil, Member{Name: "a", State: 1}, false)...)...)},
		{"member over 512 bytes", one(Member{Name: long, State: StateActive, RESPAddr: long, MemcacheAddr: long, HTTPAddr: long, GossipAddr: long})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := DecodeMembers(tc.in)
			if !errors.Is(err, ErrMemberEncoding) {
				t.Fatalf("DecodeMembers = %v, %v; want ErrMemberEncoding", m, err)
			}
		})
	}
	if _, err := DecodeMember(append(Member{Name: "a", State: 1}.AppendBinary(nil), 0)); !errors.Is(err, ErrMemberEncoding) {
		t.Fatalf("DecodeMember accepted a trailing byte: %v", err)
	}
	if _, err := DecodeMember([]byte{9}); !errors.Is(err, ErrMemberEncoding) {
		t.Fatalf("DecodeMember accepted version 9: %v", err)
	}
	// The member over 512 bytes with its zone is 476 without it: decodable.
	if _, err := DecodeMember(Member{Name: long, State: StateActive, RESPAddr: long, MemcacheAddr: long,
		HTTPAddr: long[:100]}.AppendBinary(nil)); err != nil {
		t.Fatalf("the member without its zone: %v", err)
	}
	noZone := append([]byte{memberCodecZones}, appendMemberBody(nil, Member{Name: "a", State: 1}, true)...)
	if _, err := DecodeMember(noZone); !errors.Is(err, ErrMemberEncoding) {
		t.Fatalf("DecodeMember accepted version 2 without a zone: %v", err)
	}
	if _, err := DecodeMember(zoneBody("dc 1")[1:]); !errors.Is(err, ErrMemberEncoding) {
		t.Fatalf("DecodeMember accepted an invalid zone: %v", err)
	}
}

// zoneBody hand-builds a version 2 set of one member "a" with the given zone, which
// the encoder would not write if it is invalid; edit changes the member first.
func zoneBody(zone string, edit ...func(*Member)) []byte {
	m := Member{Name: "a", State: StateActive, Weight: 1, Version: 1}
	for _, f := range edit {
		f(&m)
	}
	b := append([]byte{memberCodecZones, 1}, appendMemberBody(nil, m, false)...)
	return append(append(b, byte(len(zone))), zone...)
}

func TestMemberValidate(t *testing.T) {
	ok := Member{Name: "n", State: StateActive, Weight: 1, GossipAddr: "127.0.0.1:7946"}
	if err := memberValidate(ok); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("h", 100)
	for _, bad := range []Member{
		{State: StateActive},
		{Name: "n", State: 0},
		{Name: "\xff", State: StateActive},
		{Name: "n", State: StateActive, Weight: math.NaN()},
		{Name: "n", State: StateActive, Weight: math.Inf(-1)},
		{Name: strings.Repeat("n", 256), State: StateActive},
		{Name: "n", State: StateActive, RESPAddr: long, MemcacheAddr: long, HTTPAddr: long, GossipAddr: long, ClusterAddr: long},
		{Name: "n", State: StateActive, Zone: strings.Repeat("z", MemberMaxZoneLen+1)},
		{Name: "n", State: StateActive, Zone: "dc 1"},
		{Name: "n", State: StateActive, Zone: "dc1\t"},
		{Name: "n", State: StateActive, Zone: "\u00a0"},
		{Name: "n", State: StateActive, Zone: "dc\x00"},
		{Name: "n", State: StateActive, Zone: "\xff"},
		// Fits without the zone, not with it.
		{Name: "n", State: StateActive, RESPAddr: long, MemcacheAddr: long, HTTPAddr: long,
			GossipAddr: long, ClusterAddr: long[:40], Zone: strings.Repeat("z", 64)},
	} {
		if err := memberValidate(bad); err == nil {
			t.Errorf("memberValidate(%+v) = nil", bad)
		}
	}
	fits := Member{Name: "n", State: StateActive, RESPAddr: long, MemcacheAddr: long, HTTPAddr: long,
		GossipAddr: long, ClusterAddr: long[:40]}
	if err := memberValidate(fits); err != nil {
		t.Errorf("the member without its zone: %v", err)
	}
	for _, zone := range []string{"eu-central-1a", "dc2/rack17", "zürich", "机房1", strings.Repeat("z", MemberMaxZoneLen)} {
		good := ok
		good.Zone = zone
		if err := memberValidate(good); err != nil {
			t.Errorf("memberValidate with zone %q: %v", zone, err)
		}
	}
	// The node metadata (version byte and body) must fit memberlist's limit: a
	// body of exactly MemberMaxEncodedLen bytes is refused, one byte less is not,
	// and NodeMeta then gossips it.
	edge := Member{Name: "n", State: StateActive, Version: math.MaxUint64, Zone: "z"}
	room := MemberMaxEncodedLen - memberEncodedLen(edge)
	edge.RESPAddr, edge.HTTPAddr = strings.Repeat("r", room/2), strings.Repeat("h", room-room/2)
	if n := memberEncodedLen(edge); n != MemberMaxEncodedLen {
		t.Fatalf("edge member is %d bytes", n)
	}
	if err := memberValidate(edge); err == nil {
		t.Errorf("memberValidate of a %d-byte body = nil; its node metadata is %d bytes", MemberMaxEncodedLen, MemberMaxEncodedLen+1)
	}
	edge.RESPAddr = edge.RESPAddr[1:]
	if err := memberValidate(edge); err != nil {
		t.Errorf("memberValidate of a %d-byte body: %v", MemberMaxEncodedLen-1, err)
	}
	d := &memberDelegate{m: &Membership{name: edge.Name, members: Members{edge.Name: edge}}}
	if meta := d.NodeMeta(MemberMaxEncodedLen); len(meta) != MemberMaxEncodedLen {
		t.Errorf("NodeMeta of the largest valid member: %d bytes, want %d", len(meta), MemberMaxEncodedLen)
	}
	// The largest name with a full zone and typical addresses fits.
	big := Member{Name: strings.Repeat("n", MemberMaxStringLen), State: StateActive, Zone: strings.Repeat("z", MemberMaxZoneLen),
		RESPAddr: "[2001:db8::1]:6379", MemcacheAddr: "[2001:db8::1]:11211", HTTPAddr: "[2001:db8::1]:9121",
		GossipAddr: "[2001:db8::1]:7946", ClusterAddr: "[2001:db8::1]:7947"}
	if err := memberValidate(big); err != nil {
		t.Errorf("the longest name and zone with IPv6 addresses: %v", err)
	}
}

func FuzzDecodeMembers(f *testing.F) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 8 {
		f.Add(memberTestGenSet(r).AppendBinary(nil))
	}
	f.Add([]byte{})
	f.Add([]byte{memberCodecVersion, 0})
	f.Add([]byte{memberCodecVersion, 0x80, 0x01})
	f.Add(Member{Name: "n", State: StateActive, Weight: 1, Version: 3}.AppendBinary(nil))
	f.Add(Member{Name: "n", State: StateActive, Weight: -1, Version: 1 << 60, RESPAddr: "127.0.0.1:6379"}.AppendBinary(nil))
	// Zones: version 2 sets and metadata, and the ways they go wrong.
	f.Add(Member{Name: "n", State: StateActive, Weight: 1, Version: 3, Zone: "us-east-1a"}.AppendBinary(nil))
	f.Add(Members{
		"a": {Name: "a", State: StateActive, Weight: 1, Version: 1, Zone: "dc1"},
		"b": {Name: "b", State: StateActive, Weight: 1, Version: 1},
		"c": {Name: "c", State: StateRemoved, Version: 9, Zone: "dc2/rack17"},
	}.AppendBinary(nil))
	f.Add([]byte{memberCodecZones, 0})
	f.Add(zoneBody(""))
	f.Add(zoneBody("dc 1"))
	f.Add(zoneBody(strings.Repeat("z", MemberMaxZoneLen+1)))
	nearFullSet := membersTestMany("a", MembersMaxRing-1, StateActive)
	// (Sets at the bounds are TestDecodeMembersBounds's: big seeds stall the
	// fuzzer's minimization.)
	f.Fuzz(func(t *testing.T, b []byte) {
		// The same bytes as one node's metadata (memberlist's NodeMeta).
		if one, err := DecodeMember(b); err != nil {
			if !errors.Is(err, ErrMemberEncoding) {
				t.Fatalf("DecodeMember error %v does not wrap ErrMemberEncoding", err)
			}
		} else if enc := one.AppendBinary(nil); !bytes.Equal(enc, b) {
			t.Fatalf("DecodeMember re-encoding differs:\n in  %x\n out %x", b, enc)
		}
		m, err := DecodeMembers(b)
		if err != nil {
			if m != nil {
				t.Fatal("error with a non-nil result")
			}
			if !errors.Is(err, ErrMemberEncoding) {
				t.Fatalf("DecodeMembers error %v does not wrap ErrMemberEncoding", err)
			}
			return
		}
		// Membership rebuilds its ring from whatever set it accepts and treats a
		// failure there as unreachable.
		if _, err := m.Ring(16); err != nil {
			t.Fatalf("decoded member set makes no ring: %v", err)
		}
		// What it accepts is within the bounds, and merging it into a set at the
		// ring bound keeps that set within them.
		if err := m.checkBounds(); err != nil || len(b) > MembersMaxEncodedLen {
			t.Fatalf("decoded a set past the bounds (%d bytes): %v", len(b), err)
		}
		nearFull := nearFullSet.Clone()
		nearFull.Merge(m)
		if err := nearFull.checkBounds(); err != nil {
			t.Fatalf("merging a decoded set: %v", err)
		}
		enc := m.AppendBinary(nil)
		if !bytes.Equal(enc, b) {
			t.Fatalf("re-encoding differs:\n in  %x\n out %x", b, enc)
		}
		m2, err := DecodeMembers(enc)
		if err != nil || !membersTestEqual(m, m2) {
			t.Fatalf("decode(encode(decode(b))) = %v, %v; want %v", m2, err, m)
		}
		for name, mb := range m {
			big := mb
			big.Version = math.MaxUint64 // memberValidate allows for the largest version
			if mb.Name != name || memberValidate(mb) != nil && memberEncodedLen(big) <= MemberMaxEncodedLen {
				t.Fatalf("decoded an entry memberValidate rejects: %+v (%v)", mb, memberValidate(mb))
			}
			one, err := DecodeMember(mb.AppendBinary(nil))
			if err != nil || !memberEqual(one, mb) {
				t.Fatalf("DecodeMember round trip of %+v: %+v, %v", mb, one, err)
			}
		}
	})
}

// membersTestMany returns count members named prefix0000... in state st.
func membersTestMany(prefix string, count int, st State) Members {
	m := Members{}
	for i := range count {
		name := fmt.Sprintf("%s%05d", prefix, i)
		m[name] = Member{Name: name, State: st, Weight: 1, Version: 1, ClusterAddr: "127.0.0.1:7947"}
	}
	return m
}

// TestDecodeMembersBounds: a member set is bounded by what a real cluster needs
// (MembersMaxRing members not removed) and by the frame that carries it
// (MembersMaxCount entries, MembersMaxEncodedLen bytes); a peer cannot make a
// node rebuild a ring of 16,384 members.
func TestDecodeMembersBounds(t *testing.T) {
	withRemoved := func(ring, removed int) Members {
		m := membersTestMany("a", ring, StateActive)
		for k, v := range membersTestMany("r", removed, StateRemoved) {
			m[k] = v
		}
		return m
	}
	for _, tc := range []struct {
		name string
		m    Members
		ok   bool
	}{
		{"ring members at the bound", membersTestMany("a", MembersMaxRing, StateActive), true},
		{"leaving members count", func() Members {
			m := membersTestMany("a", MembersMaxRing/2, StateActive)
			for k, v := range membersTestMany("l", MembersMaxRing/2+1, StateLeaving) {
				m[k] = v
			}
			return m
		}(), false},
		{"one ring member too many", membersTestMany("a", MembersMaxRing+1, StateActive), false},
		{"one leaving member too many", membersTestMany("a", MembersMaxRing+1, StateLeaving), false},
		{"16,384 members", membersTestMany("a", 1<<14, StateActive), false},
		{"entries at the bound", withRemoved(MembersMaxRing, MembersMaxCount-MembersMaxRing), true},
		{"one removed entry too many", withRemoved(MembersMaxRing, MembersMaxCount-MembersMaxRing+1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc := tc.m.AppendBinary(nil)
			m, err := DecodeMembers(enc)
			if tc.ok && (err != nil || len(m) != len(tc.m)) {
				t.Fatalf("DecodeMembers of %d entries: %d, %v", len(tc.m), len(m), err)
			}
			if !tc.ok && !errors.Is(err, ErrMemberEncoding) {
				t.Fatalf("DecodeMembers of %d entries = %d entries, %v; want ErrMemberEncoding", len(tc.m), len(m), err)
			}
			if (tc.m.checkBounds() == nil) != tc.ok {
				t.Fatalf("checkBounds = %v", tc.m.checkBounds())
			}
		})
	}
	long := append([]byte{memberCodecVersion}, make([]byte, MembersMaxEncodedLen)...)
	if _, err := DecodeMembers(long); !errors.Is(err, ErrMemberEncoding) {
		t.Fatalf("DecodeMembers of %d bytes: %v", len(long), err)
	}
	// The largest set there can be fits the encoded bound, and decodes: members
	// without zones at the size bound, and one zone, so that every one of them
	// carries an empty zone field.
	big := Members{}
	for i := range MembersMaxCount {
		mb := Member{Name: fmt.Sprintf("%0255d", i), State: StateRemoved, Version: math.MaxUint64}
		s := strings.Repeat("x", (MemberMaxEncodedLen-memberEncodedLen(mb))/5)
		mb.RESPAddr, mb.MemcacheAddr, mb.HTTPAddr, mb.GossipAddr, mb.ClusterAddr = s, s, s, s, s
		big[mb.Name] = mb
	}
	first := big.Names()[0]
	z := big[first]
	z.RESPAddr, z.Zone = z.RESPAddr[:len(z.RESPAddr)-3], "z"
	big[first] = z
	enc := big.AppendBinary(nil)
	if n := len(enc); n > MembersMaxEncodedLen {
		t.Fatalf("a full set encodes to %d bytes, more than MembersMaxEncodedLen %d", n, MembersMaxEncodedLen)
	}
	if m, err := DecodeMembers(enc); err != nil || len(m) != MembersMaxCount {
		t.Fatalf("DecodeMembers of the largest set: %d, %v", len(m), err)
	}
}

// TestMembersMergeBounds: merging never takes a set past the bounds. At the ring
// bound a new live member is refused while a removal, and a new removed entry,
// still merge; a removal makes room for the next member.
func TestMembersMergeBounds(t *testing.T) {
	full := membersTestMany("a", MembersMaxRing, StateActive)
	newcomer := Members{"b": {Name: "b", State: StateActive, Weight: 1, Version: 1}}
	if would, refused := full.wouldChange(newcomer); would || !slices.Equal(refused, []string{"b"}) {
		t.Fatalf("wouldChange at the ring bound = %v, %v; want false, [b]", would, refused)
	}
	if changed := full.Merge(newcomer); len(changed) != 0 || len(full) != MembersMaxRing {
		t.Fatalf("Merge at the ring bound admitted %v", changed)
	}
	gone := Members{"r": {Name: "r", State: StateRemoved, Version: 1}}
	if changed := full.Merge(gone); !slices.Equal(changed, []string{"r"}) {
		t.Fatalf("a removed entry was refused at the ring bound: %v", changed)
	}
	// One message removing a member and adding another: the removal makes room,
	// whatever the order of the names.
	first := "a00000"
	swap := Members{first: {Name: first, State: StateRemoved, Version: 2}, "0new": {Name: "0new", State: StateActive, Version: 1}}
	if changed := full.Merge(swap); !slices.Equal(changed, []string{"0new", first}) {
		t.Fatalf("Merge of a removal and a newcomer changed %v", changed)
	}
	if err := full.checkBounds(); err != nil {
		t.Fatal(err)
	}
	// Entries: removed ones too are refused at MembersMaxCount.
	all := membersTestMany("r", MembersMaxCount, StateRemoved)
	if changed := all.Merge(gone); len(changed) != 0 || all.checkBounds() != nil {
		t.Fatalf("Merge past MembersMaxCount admitted %v", changed)
	}
	// Whatever is merged, in whatever order, the bounds hold.
	r := rand.New(rand.NewPCG(7, 8))
	for i := range 50 {
		m := membersTestMany("a", MembersMaxRing-2, StateActive)
		for range 3 {
			in := Members{}
			for range 1 + r.IntN(4) {
				name := fmt.Sprintf("z%d", r.IntN(8))
				in[name] = Member{Name: name, State: State(1 + r.IntN(3)), Version: uint64(r.IntN(3))}
			}
			m.Merge(in)
			if err := m.checkBounds(); err != nil {
				t.Fatalf("iteration %d: %v", i, err)
			}
		}
	}
}

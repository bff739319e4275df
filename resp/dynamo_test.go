package resp

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/dynakv/dynakv/proxy"
)

// fakeCluster answers the operator commands.
type fakeCluster struct {
	removed []string
	leaves  int
}

func (f *fakeCluster) Leave() error {
	f.leaves++
	if f.leaves > 1 {
		return errors.New("cluster: the last active member cannot leave")
	}
	return nil
}

func (f *fakeCluster) PreferenceList(key []byte) []string { return []string{"a", "b", string(key)} }

// PreferenceListZones puts a and b in zones, the key's own name in none.
func (f *fakeCluster) PreferenceListZones(key []byte) (names, zones []string) {
	return f.PreferenceList(key), []string{"z1", "z2", ""}
}

func (f *fakeCluster) Members() []string {
	return []string{"a alive active", "b dead active zone=z2"}
}
func (f *fakeCluster) Remove(name string) error {
	if name != "b" {
		return fmt.Errorf("cluster: unknown member %q\r\n", name)
	}
	f.removed = append(f.removed, name)
	return nil
}

// TestDynamoOptions: DGET's R and LOCAL, DPUT's and DDEL's W, and their errors.
func TestDynamoOptions(t *testing.T) {
	fc := &fakeCluster{}
	h := newHarness(t, Config{Cluster: fc})
	for _, tc := range []struct {
		args []string
		want string // a prefix of the reply
	}{
		{[]string{"DPUT", "k", "", "v", "W", "2"}, "$"},
		{[]string{"DPUT", "k", "", "v", "EX", "10", "W", "1"}, "$"},
		{[]string{"DPUT", "k", "", "v", "W", "0"}, "-ERR quorum must be a positive integer"},
		{[]string{"DPUT", "k", "", "v", "W", "x"}, "-ERR quorum must be a positive integer"},
		{[]string{"DPUT", "k", "", "v", "W"}, "-ERR syntax error"},
		{[]string{"DPUT", "k", "", "v", "W", "1", "W", "1"}, "-ERR syntax error"},
		{[]string{"DPUT", "k", "", "v", "EX", "1", "PX", "1"}, "-ERR syntax error"},
		{[]string{"DGET", "k", "R", "2"}, "*2\r\n"},
		{[]string{"DGET", "k", "LOCAL"}, "*2\r\n"},
		{[]string{"DGET", "k", "local", "r", "1"}, "*2\r\n"},
		{[]string{"DGET", "k", "R"}, "-ERR syntax error"},
		{[]string{"DGET", "k", "R", "-1"}, "-ERR quorum must be a positive integer"},
		{[]string{"DGET", "k", "FOO"}, "-ERR syntax error"},
		{[]string{"DDEL", "k", "", "W", "2"}, "$"},
		{[]string{"DDEL", "k", "", "W"}, "-ERR syntax error"},
		{[]string{"DPREFLIST", "k"}, "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nk\r\n"},
		{[]string{"DPREFLIST"}, "-ERR wrong number of arguments for 'dpreflist' command"},
		{[]string{"DPREFLIST", "k", "WITHZONES"}, "*6\r\n$1\r\na\r\n$2\r\nz1\r\n$1\r\nb\r\n$2\r\nz2\r\n$1\r\nk\r\n$0\r\n\r\n"},
		{[]string{"dpreflist", "k", "withZones"}, "*6\r\n"},
		{[]string{"DPREFLIST", "k", "WITHSCORES"}, "-ERR syntax error\r\n"},
		{[]string{"DPREFLIST", "k", "WITHZONES", "WITHZONES"}, "-ERR syntax error\r\n"},
		{[]string{"DCLUSTER", "MEMBERS"}, "*2\r\n$14\r\na alive active\r\n$21\r\nb dead active zone=z2\r\n"},
		{[]string{"DCLUSTER", "REMOVE", "b"}, "+OK\r\n"},
		{[]string{"DCLUSTER", "REMOVE", "zz"}, "-ERR cluster: unknown member \"zz\"  \r\n"},
		{[]string{"DCLUSTER", "REMOVE"}, "-ERR wrong number of arguments for 'dcluster|remove' command"},
		{[]string{"DCLUSTER", "LEAVE"}, "+OK\r\n"},
		{[]string{"DCLUSTER", "leave"}, "-ERR cluster: the last active member cannot leave\r\n"},
		{[]string{"DCLUSTER", "LEAVE", "x"}, "-ERR wrong number of arguments for 'dcluster|leave' command"},
		{[]string{"DCLUSTER", "nope"}, "-ERR unknown subcommand 'nope'."},
	} {
		if got := h.run(tc.args...); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%q: got %q, want prefix %q", tc.args, got, tc.want)
		}
	}
	if len(fc.removed) != 1 {
		t.Errorf("removed %v", fc.removed)
	}
	// WITHZONES is one flat array in RESP3 too, as DGET's reply is.
	h.c.setProto(3)
	if got := h.run("DPREFLIST", "k", "WITHZONES"); !strings.HasPrefix(got, "*6\r\n$1\r\na\r\n$2\r\nz1\r\n") {
		t.Errorf("DPREFLIST k WITHZONES in RESP3: %q", got)
	}
	noCluster := newHarness(t, Config{})
	for _, args := range [][]string{{"DPREFLIST", "k"}, {"DPREFLIST", "k", "WITHZONES"}, {"DCLUSTER", "MEMBERS"}} {
		if got := noCluster.run(args...); got != "-ERR this node has no cluster\r\n" {
			t.Errorf("%q without a cluster: %q", args, got)
		}
	}
}

// TestQuorumErrorText: NOQUORUM as DESIGN.md words it, also when wrapped.
func TestQuorumErrorText(t *testing.T) {
	for _, err := range []error{&proxy.QuorumError{Acks: 1, Need: 2}, fmt.Errorf("forward: %w", &proxy.QuorumError{Acks: 1, Need: 2})} {
		line, known := errorReply(err)
		if !known || string(line) != "-NOQUORUM reached 1 of 2 replicas\r\n" {
			t.Errorf("%v: %q %v", err, line, known)
		}
	}
	if _, known := errorReply(errors.New("other")); known {
		t.Error("an unknown error was known")
	}
}

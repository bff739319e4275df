package ring

import "testing"

// TestPartitionPinned pins keys to their partitions. Where a key lives on disk
// (storage's record keys carry the partition and the hash) depends on these numbers:
// they must never change, whatever the code computing them looks like.
func TestPartitionPinned(t *testing.T) {
	pins := []struct {
		key              string
		hash             uint64 // xxhash64, seed 0
		q1024, q64, qMax int
	}{
		{"", 0xef46db3751d8e999, 409, 25, 59801},
		{"a", 0xd24ec4f1a98c6e5b, 603, 27, 28251},
		{"foo", 0x33bf00a859c4ba3f, 575, 63, 47679},
		{"key:1", 0xbd499548dbd3414f, 335, 15, 16719},
		{"user:1000", 0x4836ae4227b0500a, 10, 10, 20490},
		{"\x00\xff", 0xe0d97d9a03131d7d, 381, 61, 7549},
	}
	rings := map[int]*Ring{}
	for _, q := range []int{1, 64, 1024, MaxPartitions} {
		r, err := New(q, equalMembers("n1"))
		if err != nil {
			t.Fatal(err)
		}
		rings[q] = r
	}
	for _, p := range pins {
		k := []byte(p.key)
		if got := KeyHash(k); got != p.hash {
			t.Errorf("KeyHash(%q) = %#x, want %#x", p.key, got, p.hash)
		}
		for q, want := range map[int]int{1: 0, 64: p.q64, 1024: p.q1024, MaxPartitions: p.qMax} {
			if got := PartitionOf(k, q); got != want {
				t.Errorf("PartitionOf(%q, %d) = %d, want %d", p.key, q, got, want)
			}
			if got := rings[q].Partition(k); got != want {
				t.Errorf("Q=%d: Partition(%q) = %d, want %d", q, p.key, got, want)
			}
			if got := PartitionOf(k, q); uint64(got) != p.hash%uint64(q) {
				t.Errorf("PartitionOf(%q, %d) = %d, not the pinned hash %#x mod Q", p.key, q, got, p.hash)
			}
		}
	}
}

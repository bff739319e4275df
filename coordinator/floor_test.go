package coordinator

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/vclock"
)

// memFloor is a FloorStore in memory that counts its saves.
type memFloor struct {
	mu    sync.Mutex
	v     uint64
	saves int
	err   error
}

func (m *memFloor) Load() (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.v, m.err
}

func (m *memFloor) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.saves
}

func (m *memFloor) Save(v uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	m.v, m.saves = v, m.saves+1
	return nil
}

// TestFloorAcrossRestart: the same actor restarted with its clock set back (a
// clean stop, as the chaos harness's clock offsets do) hands out fresh counters
// above every one it handed out before only with a FloorStore. Without one, a
// key purged meanwhile and written again gets a dot an old copy of it (a
// holder that missed the purge) may still cover, and the write would be lost
// when the copies merge.
func TestFloorAcrossRestart(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(map[bool]string{false: "memory only", true: "kept"}[keep], func(t *testing.T) {
			ctx := context.Background()
			clk := newFakeClock()
			st := newStore(t, 16)
			var fs FloorStore
			if keep {
				fs = &memFloor{}
			}
			start := func() *Coordinator {
				c, err := New(Config{Actor: "n1", Now: clk.Now, Floor: fs}, st)
				if err != nil {
					t.Fatal(err)
				}
				return c
			}
			write := func(c *Coordinator, key string) uint64 {
				rec, err := writtenRecord(c.Modify(ctx, []byte(key), func(cur record.Record) (vclock.Clock, vclock.Value, error) {
					return cur.Str.Join(), value("v"), nil
				}, WriteOptions{}))
				if err != nil {
					t.Fatal(err)
				}
				return rec.Str.Join().Get("n1")
			}
			c := start()
			before := write(c, "a")
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			clk.Advance(-100 * time.Second)
			c = start()
			defer c.Close()
			after := write(c, "b") // a key this actor never wrote: a fresh entry
			if got := after > before; got != keep {
				t.Fatalf("after a restart 100 s back: fresh counter %d, before it %d; above = %v, want %v", after, before, got, keep)
			}
		})
	}
}

// TestFloorReservations: New reserves a minute ahead before it serves, the
// keeper saves the next reservation when the clock nears the last, Close saves
// a floor beyond the reservation, and a store that fails to load stops New.
func TestFloorReservations(t *testing.T) {
	clk := newFakeClock()
	st := newStore(t, 16)
	fs := &memFloor{}
	c, err := New(Config{Actor: "n1", Now: clk.Now, Floor: fs}, st)
	if err != nil {
		t.Fatal(err)
	}
	now := uint64(clk.Now().UnixMicro())
	if v, _ := fs.Load(); v != now+floorAhead {
		t.Fatalf("reservation after New = %d, want now+floorAhead = %d", v, now+floorAhead)
	}
	// Counters up to the reservation need no save.
	for range 100 {
		if n := c.freshCounter(); n > now+floorAhead {
			t.Fatalf("counter %d past the reservation", n)
		}
	}
	if err := c.reserve(); err != nil || fs.count() != 1 {
		t.Fatalf("reserve with the clock far below the reservation: %v, %d saves, want 1", err, fs.count())
	}
	clk.Advance(time.Duration(floorAhead/2+1) * time.Microsecond)
	if err := c.reserve(); err != nil || fs.count() < 2 { // the keeper may have saved it first
		t.Fatalf("reserve past half the reservation: %v, %d saves, want 2", err, fs.count())
	}
	if v, _ := fs.Load(); v != uint64(clk.Now().UnixMicro())+floorAhead {
		t.Fatalf("second reservation %d, want %d", v, uint64(clk.Now().UnixMicro())+floorAhead)
	}
	// A counter beyond the reservation (the clock jumped) is saved by Close.
	clk.Advance(time.Hour)
	n := c.freshCounter()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if v, _ := fs.Load(); v != n {
		t.Fatalf("floor saved by Close = %d, want the last counter %d", v, n)
	}

	bad := &memFloor{err: errors.New("disk on fire")}
	if _, err := New(Config{Actor: "n1", Now: clk.Now, Floor: bad}, st); err == nil {
		t.Fatal("New with a floor store that cannot load succeeded")
	}
}

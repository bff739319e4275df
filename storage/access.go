package storage

import (
	"sync/atomic"

	"github.com/dynakv/dynakv/evict"
)

// accessTable holds the Store's access table (SetAccess); nil when off.
type accessTable = atomic.Pointer[evict.Table]

// SetAccess sets the table of access words that Get keeps (nil: none, the
// default). Every Get that finds a record touches its key's word, so each
// replica that serves a read learns of it: Get is what client reads call
// (coordinator's Get, quorum and local reads, and the replica read of a peer's
// quorum read), while anti-entropy, purge and handoff read with GetEncoded
// and ScanEncoded, and writes take Update, none of which touch. The evictor
// owns the table (its clock, its policy's kind) and may swap it at any time.
func (s *Store) SetAccess(t *evict.Table) { s.access.Store(t) }

// Access returns the table set by SetAccess, nil when none.
func (s *Store) Access() *evict.Table { return s.access.Load() }

// touch records a read of the key of hash h in the access table, if there is
// one and the read found a record (*found; deferred by Get, so it sees Get's
// result). Reads of absent keys leave no word, as Redis updates the LRU field
// only of keys it finds.
func (s *Store) touch(h uint64, found *bool) {
	if t := s.access.Load(); t != nil && *found {
		t.Touch(h)
	}
}

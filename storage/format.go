package storage

import (
	"errors"
	"os"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
)

// Pebble's on-disk format (its FormatMajorVersion) of a data directory.
//
// Binaries before this one set no format, so their directories sit at Pebble
// v1's most compatible one (FormatMostCompatible, RocksDB-compatible tables),
// which Pebble v2 no longer opens: v2's FormatMinSupported is
// FormatFlushableIngest, and v2 reads no table older than TableFormatPebblev1.
// So every store is created at formatCurrent, and Open ratchets an existing one
// to it (Pebble's Open ratchets to Options.FormatMajorVersion, step by step, with
// each step's migration). formatCurrent is FormatVirtualSSTables, v1.1.5's
// FormatNewest, named rather than taken from FormatNewest so that a change of
// Pebble cannot move it unnoticed (TestFormatIsPebblesNewest), and because v2
// opens it: it is above v2's minimum, and the ratchet's step to
// FormatPrePebblev1MarkedCompacted rewrites the old RocksDB-format tables, so a
// ratcheted directory holds only tables v2 reads. A format ratchet cannot be
// undone: a binary with an older Pebble than the one that ratcheted may refuse
// the directory (every dynakv binary so far has Pebble v1.1.5, which reads it).
const formatCurrent = pebble.FormatVirtualSSTables

// formatOf returns the format of the Pebble directory dir on fs, and whether a
// Pebble directory is there. A directory that does not exist yet has none.
func formatOf(fs vfs.FS, dir string) (pebble.FormatMajorVersion, bool, error) {
	if _, err := fs.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	d, err := pebble.Peek(dir, fs)
	if err != nil {
		return 0, false, err
	}
	return d.FormatMajorVersion, d.Exists, nil
}

// setFormat chooses the format Pebble opens the directory at: formatCurrent, or
// for tests cfg.format (a store as binaries before formatCurrent made it: they
// set none, which Pebble v1 takes as FormatMostCompatible). It returns the
// logging to do around pebble.Open: a directory below the format is upgraded
// during Open, which may take a while (the old tables are rewritten), so it is
// said before and after.
func setFormat(cfg Config, opts *pebble.Options, dir string) (after func(error)) {
	opts.FormatMajorVersion = formatCurrent
	if cfg.format != 0 {
		opts.FormatMajorVersion = cfg.format
	}
	if cfg.InMemory {
		return func(error) {}
	}
	was, exists, err := formatOf(opts.FS, dir)
	if err != nil || !exists || was >= opts.FormatMajorVersion {
		// An error is Open's to report, with its own words.
		return func(error) {}
	}
	log := cfg.Logger.With("dir", dir, "from", uint64(was), "to", uint64(opts.FormatMajorVersion))
	log.Info("storage: upgrading the data directory's Pebble format (old tables are rewritten once)")
	start := time.Now()
	return func(err error) {
		if err != nil {
			log.Error("storage: the data directory's Pebble format upgrade failed", "err", err)
			return
		}
		log.Info("storage: upgraded the data directory's Pebble format", "took", time.Since(start).Round(time.Millisecond))
	}
}

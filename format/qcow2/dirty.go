package qcow2

import (
	"fmt"

	"github.com/thinblk/thinblk/block"
)

// The dirty bit (incompatible feature bit 0) is set by writers that use
// lazy refcounts: while it is set, refcounts may be stale. thinblk keeps
// refcounts exact at every flush, so it never sets the bit; an image left
// dirty by another program (QEMU killed with lazy_refcounts=on) has its
// refcounts rebuilt from the L1/L2 tables when it is opened writable, and
// the bit is then cleared. Opened read-only, a dirty image is read as it
// is (reads do not depend on refcounts).

// OptionKeepDirty ("keep-dirty=on") opens a dirty image writable without
// rebuilding its refcounts, so that Check(RepairAll) can report and repair
// them (thinblk check -r). Writes before that repair are refused.
const OptionKeepDirty = "keep-dirty"

// prepareWrite makes an image ready for writing: it notes the autoclear
// bits to clear before guest data changes, and rebuilds refcounts of a
// dirty image.
func (img *Image) prepareWrite() error {
	h := img.hdr
	changed := false
	// We do not update bitmaps: clearing the autoclear bits marks them
	// inconsistent, as the spec demands of writers that do not know them.
	// That waits for the first change of guest data (beginGuestChange), so
	// that an open that only reads, or only takes or deletes a snapshot,
	// leaves a backup tool's dirty bitmaps valid, as QEMU does.
	img.autoclearPending.Store(h.AutoclearFeatures != 0)
	if h.IncompatibleFeatures&IncompatDirty != 0 && img.keepDirty {
		img.dirtyPending.Store(true)
	} else if h.IncompatibleFeatures&IncompatDirty != 0 {
		res, err := img.repair(RepairAll)
		if err != nil {
			return fmt.Errorf("qcow2: rebuilding refcounts of a dirty image: %w", err)
		}
		if res.Corruptions > res.CorruptionsFixed {
			return fmt.Errorf("%w: qcow2: dirty image has %d corruptions that cannot be repaired", block.ErrCorrupt, res.Corruptions-res.CorruptionsFixed)
		}
		h.IncompatibleFeatures &^= IncompatDirty
		changed = true
	}
	if changed {
		return img.writeHeaderLocked()
	}
	return nil
}

// beginGuestChange is checkWritable for requests that change what the
// guest reads (writes, zeroing, discards, resize, a new backing file, an
// applied snapshot). Before the first of them it clears the autoclear
// feature bits, invalidating the features thinblk does not maintain
// (persistent dirty bitmaps).
//
// Preconditions: img.mu not held.
func (img *Image) beginGuestChange() error {
	if err := img.checkWritable(); err != nil {
		return err
	}
	if !img.autoclearPending.Load() {
		return nil
	}
	img.mu.Lock()
	defer img.mu.Unlock()
	return img.clearAutoclearLocked()
}

// clearAutoclearLocked clears the autoclear bits if that is still to do.
//
// Preconditions: img.mu held.
func (img *Image) clearAutoclearLocked() error {
	if !img.autoclearPending.Load() {
		return nil
	}
	img.hdr.AutoclearFeatures = 0
	if err := img.writeHeaderLocked(); err != nil {
		return err
	}
	img.autoclearPending.Store(false)
	return nil
}

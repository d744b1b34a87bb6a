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

// prepareWrite makes an image ready for writing: it clears autoclear bits
// for features thinblk does not maintain, and rebuilds refcounts of a
// dirty image.
func (img *Image) prepareWrite() error {
	h := img.hdr
	changed := false
	if h.AutoclearFeatures != 0 {
		// We do not update bitmaps: clearing the bit marks them inconsistent,
		// as the spec demands of writers that do not know them.
		h.AutoclearFeatures = 0
		changed = true
	}
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

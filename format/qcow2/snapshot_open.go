package qcow2

import (
	"fmt"

	"github.com/thinblk/thinblk/block"
)

// Open options that show an internal snapshot instead of the active image
// (qemu-img convert -l): read-only, the snapshot's L1 table, the active
// image's size and backing chain.
const (
	// OptionSnapshot selects a snapshot by ID, or else by name (qemu's
	// plain -l SNAPSHOT).
	OptionSnapshot = "snapshot"
	// OptionSnapshotID and OptionSnapshotName select by ID and by name
	// (-l snapshot.id=ID,snapshot.name=NAME); given both, both must match.
	OptionSnapshotID   = "snapshot.id"
	OptionSnapshotName = "snapshot.name"
)

// viewSnapshot switches a read-only image to the snapshot img.snapshotSel
// selects: its L1 table (validated like the active one).
func (img *Image) viewSnapshot() error {
	sel := img.snapshotSel
	id, name, either := sel[OptionSnapshotID], sel[OptionSnapshotName], sel[OptionSnapshot]
	var sn *Snapshot
	if either != "" {
		if id != "" || name != "" {
			return fmt.Errorf("%w: qcow2: option %s cannot be combined with %s or %s", block.ErrInvalid, OptionSnapshot, OptionSnapshotID, OptionSnapshotName)
		}
		if i, ok := img.findSnapshotLocked(either); ok { // ID first, then name
			sn = &img.snapshots[i]
		}
	} else {
		for i, s := range img.snapshots {
			if (id == "" || s.ID == id) && (name == "" || s.Name == name) {
				sn = &img.snapshots[i]
				break
			}
		}
	}
	if sn == nil {
		return ErrSnapshotNotFound
	}
	l1, err := img.readTable(int64(sn.L1TableOffset), int64(sn.L1Size))
	if err != nil {
		return err
	}
	for i, e := range l1 {
		if e&l1ReservedMask != 0 || (e&entryOffsetMask)%uint64(img.clusterSize) != 0 {
			return corruptf("snapshot %q: L1 entry %d (0x%x) is invalid", sn.ID, i, e)
		}
	}
	// The virtual size stays the active image's, as with qemu-img convert
	// -l: a snapshot taken before the image grew reads zeros (or the
	// backing file) past its own size.
	size := img.Size()
	if need := (size + img.l2Entries*img.clusterSize - 1) / (img.l2Entries * img.clusterSize); int64(len(l1)) < need {
		// Clusters past the snapshot's table are unallocated.
		l1 = append(l1, make([]uint64, need-int64(len(l1)))...)
	}
	img.l1 = l1
	img.size.Store(size)
	return nil
}

package qcow2

import (
	"encoding/binary"

	"github.com/thinblk/thinblk/block"
)

// MakeEmpty drops every cluster of the image, as `commit` does to the top
// image after its data went into the base (qemu-img commit without -d):
// every L2 entry becomes unallocated, so reads go to the backing file
// again (zeros without one), and the host clusters of the active layer
// are freed (those shared with internal snapshots keep their other
// references). L2 tables are kept. The change is flushed before this
// returns; it waits for requests in flight and blocks new ones meanwhile.
//
// On failure part of the clusters may already be dropped: the image then
// reads its backing file there.
func (img *Image) MakeEmpty() error {
	if err := img.beginGuestChange(); err != nil {
		return img.opError("make-empty", 0, 0, err)
	}
	clusters := (img.Size() + img.clusterSize - 1) >> img.clusterBits
	lk := img.ranges.lock(0, max(clusters, 1), true)
	defer img.ranges.unlock(lk)
	img.mu.Lock()
	defer img.mu.Unlock()
	if img.closed {
		return block.ErrClosed
	}
	if err := img.makeEmptyLocked(clusters); err != nil {
		return img.opError("make-empty", 0, img.Size(), err)
	}
	if err := img.flushLocked(); err != nil {
		return img.opError("make-empty", 0, img.Size(), err)
	}
	return nil
}

// makeEmptyLocked clears the L2 entries of guest clusters [0, clusters)
// and queues the release of their host storage.
//
// Preconditions: img.mu held; every guest cluster locked exclusive.
func (img *Image) makeEmptyLocked(clusters int64) error {
	for l1Index := int64(0); l1Index < int64(len(img.l1)); l1Index++ {
		l2Off := int64(img.l1[l1Index] & entryOffsetMask)
		if l2Off == 0 {
			continue
		}
		first := l1Index * img.l2Entries
		n := min(img.l2Entries, clusters-first)
		for i := int64(0); i < n; i++ {
			// The table is fetched again for every entry: setRawLocked may
			// copy it (shared with a snapshot) or evict it.
			tbl, err := img.l2Cache.get(int64(img.l1[l1Index] & entryOffsetMask))
			if err != nil {
				return err
			}
			p := i * img.l2EntrySize
			raw := binary.BigEndian.Uint64(tbl[p:])
			var bitmap uint64
			if img.format.extended {
				bitmap = binary.BigEndian.Uint64(tbl[p+8:])
			}
			if raw == 0 && bitmap == 0 {
				continue
			}
			m, err := img.format.decode(raw, bitmap)
			if err != nil {
				return err
			}
			if err := img.setRawLocked(first+i, 0, 0); err != nil {
				return err
			}
			img.freeMappingLater(m)
		}
	}
	return nil
}

package qcow2

import (
	"fmt"
	"math"

	"github.com/thinblk/thinblk/block"
)

// Resize changes the virtual size to newSize (a multiple of 512). Growing
// enlarges the L1 table when needed (a new table is written, the header
// switched to it, the old one freed) and zeroes the old tail of the last
// cluster. Shrinking needs shrink; it frees every cluster past the new end,
// and refuses when data is allocated there unless discardData is set.
// Resize waits for in-flight requests and blocks new ones while it runs.
func (img *Image) Resize(newSize int64, shrink, discardData bool) error {
	err := img.resize(newSize, shrink, discardData)
	return img.opError("resize", newSize, 0, err)
}

func (img *Image) resize(newSize int64, shrink, discardData bool) error {
	if err := img.beginGuestChange(); err != nil {
		return err
	}
	if newSize < 0 || newSize%512 != 0 {
		return fmt.Errorf("%w: qcow2: size %d is not a multiple of 512", block.ErrInvalid, newSize)
	}
	if len(img.snapshots) > 0 && newSize < img.Size() {
		return fmt.Errorf("%w: qcow2: cannot shrink an image with internal snapshots", block.ErrNotSupported)
	}
	lk := img.ranges.lock(0, math.MaxInt64, true)
	defer img.ranges.unlock(lk)
	oldSize := img.Size()
	switch {
	case newSize == oldSize:
		return nil
	case newSize > oldSize:
		if err := img.growLocked(newSize); err != nil {
			return err
		}
		// Bytes past the old end inside its last cluster may hold stale
		// data, and a longer backing file must not show through the new
		// area (as QEMU does): both must read as zeros now.
		zeroEnd := min((oldSize+img.clusterSize-1)/img.clusterSize*img.clusterSize, newSize)
		if img.backing != nil && img.backing.Size() > oldSize {
			zeroEnd = max(zeroEnd, min(newSize, img.backing.Size()))
		}
		if zeroEnd <= oldSize {
			return nil
		}
		if !img.zeroNative() {
			return img.writeZeroBytes(oldSize, zeroEnd-oldSize, 0)
		}
		return img.zeroLocked(oldSize, zeroEnd-oldSize, 0)
	default:
		if !shrink {
			return fmt.Errorf("%w: qcow2: shrinking from %d to %d bytes needs --shrink", block.ErrInvalid, oldSize, newSize)
		}
		return img.shrinkLocked(newSize, discardData)
	}
}

// growLocked enlarges the virtual size.
//
// Preconditions: every guest cluster locked exclusive.
func (img *Image) growLocked(newSize int64) error {
	img.mu.Lock()
	defer img.mu.Unlock()
	need := ((newSize+img.clusterSize-1)>>img.clusterBits + img.l2Entries - 1) / img.l2Entries
	if need*8 > maxL1Bytes {
		return fmt.Errorf("%w: qcow2: size %d needs an L1 table larger than %d bytes", block.ErrInvalid, newSize, maxL1Bytes)
	}
	if need > int64(len(img.l1)) {
		// Make everything that the new table will point at durable first.
		if err := img.flushLocked(); err != nil {
			return err
		}
		grown := max(need, int64(len(img.l1))*3/2)
		grown = min(grown, maxL1Bytes/8)
		clusters := (grown*8 + img.clusterSize - 1) / img.clusterSize
		off, err := img.allocClustersLocked(clusters)
		if err != nil {
			return err
		}
		l1 := make([]uint64, grown)
		copy(l1, img.l1)
		// The new table's clusters must be counted before anything points
		// at them.
		if err := img.writeRefcountsLocked(); err != nil {
			return err
		}
		if err := img.file.Pwrite(encodeTable(l1), off, 0); err != nil {
			return err
		}
		if err := img.file.Flush(); err != nil {
			return err
		}
		oldOff, oldLen := int64(img.hdr.L1TableOffset), int64(len(img.l1))
		img.hdr.L1TableOffset = uint64(off)
		img.hdr.L1Size = uint32(grown)
		img.hdr.Size = uint64(newSize)
		if err := img.writeHeaderLocked(); err != nil {
			return err
		}
		img.l1 = l1
		img.l1Dirty = false
		img.freeClustersLater(oldOff, max(1, (oldLen*8+img.clusterSize-1)/img.clusterSize))
		img.size.Store(newSize)
		return img.flushLocked()
	}
	img.hdr.Size = uint64(newSize)
	if err := img.writeHeaderLocked(); err != nil {
		return err
	}
	img.size.Store(newSize)
	return nil
}

// shrinkLocked cuts the virtual size, freeing clusters past the new end.
//
// Preconditions: every guest cluster locked exclusive.
func (img *Image) shrinkLocked(newSize int64, discardData bool) error {
	oldSize := img.Size()
	first := (newSize + img.clusterSize - 1) >> img.clusterBits // first cluster to drop
	if !discardData {
		for off := first << img.clusterBits; off < oldSize; {
			e, err := img.BlockStatus(off, oldSize-off)
			if err != nil {
				return err
			}
			if e.Status&block.Data != 0 {
				return fmt.Errorf("%w: qcow2: data is allocated at offset %d, past the new size %d (allow data loss to shrink anyway)", block.ErrInvalid, e.Off, newSize)
			}
			off = e.End()
		}
	}
	img.mu.Lock()
	defer img.mu.Unlock()
	end := (oldSize + img.clusterSize - 1) >> img.clusterBits
	for vc := first; vc < end; {
		l1Index := vc / img.l2Entries
		if l1Index >= int64(len(img.l1)) || img.l1[l1Index]&entryOffsetMask == 0 {
			vc = (l1Index + 1) * img.l2Entries
			continue
		}
		ms, err := img.lookupLocked(vc, end-vc)
		if err != nil {
			return err
		}
		for i, m := range ms {
			if m == (mapping{}) {
				continue
			}
			if err := img.setRawLocked(vc+int64(i), 0, 0); err != nil {
				return err
			}
			img.freeMappingLater(m)
		}
		vc += int64(len(ms))
	}
	// L2 tables wholly past the new end are dropped.
	keep := (first + img.l2Entries - 1) / img.l2Entries
	for i := keep; i < int64(len(img.l1)); i++ {
		if off := int64(img.l1[i] & entryOffsetMask); off != 0 {
			if img.l1[i]&entryCopied != 0 {
				img.l2Cache.drop(off)
			}
			img.l1[i] = 0
			img.l1Dirty = true
			img.freeClustersLater(off, 1)
		}
	}
	if err := img.flushLocked(); err != nil {
		return err
	}
	img.hdr.Size = uint64(newSize)
	if err := img.writeHeaderLocked(); err != nil {
		return err
	}
	img.size.Store(newSize)
	return nil
}

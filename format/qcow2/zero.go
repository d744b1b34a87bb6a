package qcow2

import (
	"fmt"

	"github.com/thinblk/thinblk/block"
)

// zeroNative reports whether WriteZeroes and Discard work on metadata: on
// v3 images (zero flag), and on v2 images without a backing file (where a
// deallocated cluster reads as zeros).
func (img *Image) zeroNative() bool {
	return img.hdr.Version >= 3 || img.backing == nil
}

// WriteZeroes makes [off, off+n) read as zeros.
//
// Whole units (clusters, or subclusters with extended L2) become zero
// units: on v3 with MayUnmap the host cluster of a whole cluster is freed,
// without it the cluster keeps its storage (anchored). A partial unit is
// marked zero when the rest of it already reads as zeros and it holds no
// data; otherwise zero bytes are written into it (ErrNotSupported with
// NoFallback). On v2 images without a backing file zeroed clusters are
// deallocated; with a backing file zeros are written.
func (img *Image) WriteZeroes(off, n int64, flags block.Flags) error {
	if err := img.beginGuestChange(); err != nil {
		return img.opError("write-zeroes", off, n, err)
	}
	if err := block.CheckRange(off, n, img.Size()); err != nil {
		return img.opError("write-zeroes", off, n, err)
	}
	if n == 0 {
		return nil
	}
	if !img.zeroNative() {
		return block.WriteZeroesFallback(img, off, n, flags)
	}
	lk := img.ranges.lock(off>>img.clusterBits, (off+n-1)>>img.clusterBits+1, true)
	err := img.zeroLocked(off, n, flags)
	img.ranges.unlock(lk)
	if err == nil && flags.Has(block.FUA) {
		err = img.Flush()
	}
	return img.opError("write-zeroes", off, n, err)
}

// zeroLocked zeroes [off, off+n).
//
// Preconditions: the guest clusters of the range are locked exclusive.
func (img *Image) zeroLocked(off, n int64, flags block.Flags) error {
	us, cs := img.unitSize, img.clusterSize
	size := img.Size()
	end := off + n
	for off < end {
		uStart := off / us * us
		uEnd := min(uStart+us, size)
		if off != uStart || end < uEnd {
			pieceEnd := min(end, uEnd)
			if err := img.zeroPartialUnit(off, pieceEnd, uStart, uEnd, flags); err != nil {
				return err
			}
			off = pieceEnd
			continue
		}
		// Whole units from off up to wholeEnd.
		wholeEnd := end / us * us
		if end == size {
			wholeEnd = end
		}
		vc := off >> img.clusterBits
		cstart := vc << img.clusterBits
		segEnd := min(wholeEnd, cstart+cs)
		var err error
		if off == cstart && (segEnd == cstart+cs || segEnd == size) {
			err = img.zeroCluster(vc, flags)
		} else {
			err = img.zeroUnits(vc, (off-cstart)/us, (segEnd-1-cstart)/us, flags)
		}
		if err != nil {
			return err
		}
		off = segEnd
	}
	return nil
}

// zeroPartialUnit zeroes [a, b), part of the unit [uStart, uEnd).
func (img *Image) zeroPartialUnit(a, b, uStart, uEnd int64, flags block.Flags) error {
	vc := uStart >> img.clusterBits
	img.mu.Lock()
	ms, err := img.lookupLocked(vc, 1)
	img.mu.Unlock()
	if err != nil {
		return err
	}
	m := ms[0]
	u := (uStart - vc<<img.clusterBits) / img.unitSize
	eligible := !m.compressed && m.alloc&(1<<u) == 0
	if eligible {
		z1, err := img.chainReadsZero(uStart, a)
		if err != nil {
			return err
		}
		z2, err := img.chainReadsZero(b, uEnd)
		if err != nil {
			return err
		}
		eligible = z1 && z2
	}
	if eligible {
		if img.units == 1 {
			return img.zeroCluster(vc, flags)
		}
		return img.zeroUnits(vc, u, u, flags)
	}
	return img.writeZeroBytes(a, b-a, flags)
}

// writeZeroBytes writes zero bytes (the fallback for what the metadata
// cannot express).
//
// Preconditions: the guest clusters of the range are locked exclusive.
func (img *Image) writeZeroBytes(off, n int64, flags block.Flags) error {
	if flags.Has(block.NoFallback) {
		return fmt.Errorf("write-zeroes of a partial cluster with data: %w", block.ErrNotSupported)
	}
	for n > 0 {
		c := min(n, 1<<20)
		if err := img.writeLocked(block.ZeroBuffer(int(c)), off); err != nil {
			return err
		}
		off, n = off+c, n-c
	}
	return nil
}

// chainReadsZero reports whether [a, b) reads as zeros through the whole
// backing chain, according to block status.
func (img *Image) chainReadsZero(a, b int64) (bool, error) {
	for a < b {
		e, err := block.ChainStatus(img, a, b-a, nil)
		if err != nil {
			return false, err
		}
		if e.Status&block.Zero == 0 && e.Status.Present() {
			return false, nil
		}
		a = e.End()
	}
	return true, nil
}

// zeroCluster makes guest cluster vc read as zeros (see WriteZeroes).
func (img *Image) zeroCluster(vc int64, flags block.Flags) error {
	img.mu.Lock()
	defer img.mu.Unlock()
	ms, err := img.lookupLocked(vc, 1)
	if err != nil {
		return err
	}
	old := ms[0]
	var m mapping
	unmap := true
	if img.hdr.Version >= 3 {
		unmap = old.compressed || (flags.Has(block.MayUnmap) && old.host != 0)
		if !unmap {
			m = old
		}
		m.alloc, m.zero = 0, allUnits(img.units)
	}
	if m == old {
		return nil
	}
	if err := img.setMappingLocked(vc, m); err != nil {
		return err
	}
	if unmap {
		img.freeMappingLater(old)
	}
	return nil
}

// zeroUnits marks subclusters u0..u1 of guest cluster vc as zero, keeping
// the host cluster. Compressed clusters have no subclusters: zeros are
// written instead.
func (img *Image) zeroUnits(vc, u0, u1 int64, flags block.Flags) error {
	img.mu.Lock()
	ms, err := img.lookupLocked(vc, 1)
	if err != nil {
		img.mu.Unlock()
		return err
	}
	old := ms[0]
	if old.compressed {
		img.mu.Unlock()
		cstart := vc << img.clusterBits
		return img.writeZeroBytes(cstart+u0*img.unitSize, (u1-u0+1)*img.unitSize, flags)
	}
	defer img.mu.Unlock()
	mask := unitRange(int(u0), int(u1))
	m := old
	m.alloc &^= mask
	m.zero |= mask
	if m == old {
		return nil
	}
	return img.setMappingLocked(vc, m)
}

// Discard deallocates the whole clusters of [off, off+n) (partial clusters
// are ignored, except the last cluster of an image whose size is not
// cluster aligned). Where the image has a backing file, or on v3 where the
// cluster was allocated, a zero cluster is left so that the range reads as
// zeros and backing data never shows through. On v2 images with a backing
// file Discard does nothing.
func (img *Image) Discard(off, n int64, flags block.Flags) error {
	if err := img.beginGuestChange(); err != nil {
		return img.opError("discard", off, n, err)
	}
	size := img.Size()
	if err := block.CheckRange(off, n, size); err != nil {
		return img.opError("discard", off, n, err)
	}
	if !img.zeroNative() {
		return nil
	}
	cs := img.clusterSize
	a := (off + cs - 1) / cs * cs
	b := (off + n) / cs * cs
	if off+n == size && a < size {
		b = (size + cs - 1) / cs * cs
	}
	if a >= b {
		return nil
	}
	lk := img.ranges.lock(a>>img.clusterBits, b>>img.clusterBits, true)
	err := img.discardLocked(a>>img.clusterBits, b>>img.clusterBits)
	img.ranges.unlock(lk)
	if err == nil && flags.Has(block.FUA) {
		err = img.Flush()
	}
	return img.opError("discard", off, n, err)
}

// discardLocked discards guest clusters [vc0, vc1).
//
// Preconditions: those guest clusters are locked exclusive.
func (img *Image) discardLocked(vc0, vc1 int64) error {
	img.mu.Lock()
	defer img.mu.Unlock()
	for vc := vc0; vc < vc1; {
		l1Index := vc / img.l2Entries
		if img.backing == nil && (l1Index >= int64(len(img.l1)) || img.l1[l1Index]&entryOffsetMask == 0) {
			// Nothing allocated under this L1 entry and no backing file:
			// the clusters already read as zeros.
			vc = (l1Index + 1) * img.l2Entries
			continue
		}
		ms, err := img.lookupLocked(vc, vc1-vc)
		if err != nil {
			return err
		}
		for i, old := range ms {
			var m mapping
			allocated := old.host != 0 || old.compressed
			if img.hdr.Version >= 3 && (img.backing != nil || allocated) {
				m.zero = allUnits(img.units)
			}
			if m == old {
				continue
			}
			if err := img.setMappingLocked(vc+int64(i), m); err != nil {
				return err
			}
			img.freeMappingLater(old)
		}
		vc += int64(len(ms))
	}
	return nil
}

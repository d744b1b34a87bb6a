package qcow2

import (
	"fmt"

	"github.com/thinblk/thinblk/block"
)

// maxHostClusters bounds host cluster indexes: offsets must stay below
// 2^56 (the L2 entry offset field).
func (img *Image) maxHostClusters() int64 { return 1 << (56 - img.clusterBits) }

// refcountLocked returns the refcount of host cluster idx.
//
// Preconditions: img.mu held.
func (img *Image) refcountLocked(idx int64) (uint64, error) {
	bi := idx / img.rbEntries
	if bi >= int64(len(img.rt)) || img.rt[bi] == 0 {
		return 0, nil
	}
	blk, err := img.rbCache.get(int64(img.rt[bi]))
	if err != nil {
		return 0, err
	}
	return refcountAt(blk, idx%img.rbEntries, img.hdr.RefcountOrder), nil
}

// setRefcountLocked sets the refcount of host cluster idx to v, creating
// refcount blocks (and growing the refcount table) as needed. New metadata
// clusters are placed outside [avoidStart, avoidEnd) (clusters the caller
// is about to use).
//
// Preconditions: img.mu held.
func (img *Image) setRefcountLocked(idx int64, v uint64, avoidStart, avoidEnd int64) error {
	if v > maxRefcount(img.hdr.RefcountOrder) {
		return fmt.Errorf("%w: qcow2: refcount of cluster %d would overflow %d bits", block.ErrInvalid, idx, img.hdr.RefcountBits())
	}
	bi := idx / img.rbEntries
	if v == 0 && (bi >= int64(len(img.rt)) || img.rt[bi] == 0) {
		return nil
	}
	off, err := img.ensureRefblockLocked(bi, min(avoidStart, idx), max(avoidEnd, idx+1))
	if err != nil {
		return err
	}
	blk, err := img.rbCache.get(off)
	if err != nil {
		return err
	}
	setRefcountAt(blk, idx%img.rbEntries, img.hdr.RefcountOrder, v)
	img.rbCache.markDirty(off)
	if v > 0 {
		img.highWater = max(img.highWater, idx+1)
	} else if idx < img.freeHint {
		img.freeHint = idx
	}
	return nil
}

// ensureRefblockLocked returns the offset of refcount block bi, creating
// it if needed. A new block is placed inside the range it describes when
// possible (describing itself), else in the first free cluster at or after
// avoidEnd.
//
// Preconditions: img.mu held.
func (img *Image) ensureRefblockLocked(bi, avoidStart, avoidEnd int64) (int64, error) {
	if bi >= int64(len(img.rt)) {
		if err := img.growRefcountTableLocked(bi, avoidStart, avoidEnd); err != nil {
			return 0, err
		}
	}
	if img.rt[bi] != 0 {
		return int64(img.rt[bi]), nil
	}
	lo, hi := bi*img.rbEntries, (bi+1)*img.rbEntries
	r := lo
	if r >= avoidStart && r < avoidEnd {
		r = avoidEnd
	}
	if r < hi {
		// Every cluster of range bi is free (it has no block yet).
		off := r << img.clusterBits
		blk, err := img.rbCache.create(off)
		if err != nil {
			return 0, err
		}
		img.reserve(off, img.clusterSize)
		setRefcountAt(blk, r-lo, img.hdr.RefcountOrder, 1)
		img.rt[bi] = uint64(off)
		img.rtDirty = true
		img.highWater = max(img.highWater, r+1)
		return off, nil
	}
	// The whole range is taken by the caller's clusters: put the block in
	// another range.
	r, err := img.findFreeLocked(max(avoidEnd, img.freeHint), 1, avoidStart, avoidEnd)
	if err != nil {
		return 0, err
	}
	off := r << img.clusterBits
	if _, err := img.rbCache.create(off); err != nil {
		return 0, err
	}
	img.reserve(off, img.clusterSize)
	img.rt[bi] = uint64(off)
	img.rtDirty = true
	if err := img.setRefcountLocked(r, 1, min(avoidStart, r), max(avoidEnd, r+1)); err != nil {
		return 0, err
	}
	return off, nil
}

// growRefcountTableLocked replaces the refcount table with a larger one that
// has an entry for block bi, placed at the end of the used area. The new
// table is written and the header switched to it before this returns; the
// old table's clusters are freed at the next flush.
//
// Preconditions: img.mu held.
func (img *Image) growRefcountTableLocked(bi, avoidStart, avoidEnd int64) error {
	cs := img.clusterSize
	start := max(img.highWater, avoidEnd)
	entries := max(bi+1, int64(len(img.rt))*2)
	for {
		tc := (entries*8 + cs - 1) / cs
		// The table's own clusters and the blocks that describe them must
		// have entries too.
		end := start + tc + tc/img.rbEntries + 2
		if (end-1)/img.rbEntries < entries {
			break
		}
		entries *= 2
	}
	tc := (entries*8 + cs - 1) / cs
	if tc*cs > maxRefcountTable {
		return fmt.Errorf("%w: qcow2: refcount table would exceed %d bytes", block.ErrNoSpace, maxRefcountTable)
	}
	entries = tc * cs / 8
	oldOff, oldClusters := int64(img.hdr.RefcountTableOffset), int64(img.hdr.RefcountTableClusters)
	nt := make([]uint64, entries)
	copy(nt, img.rt)
	img.rt = nt
	img.highWater = max(img.highWater, start+tc)
	img.reserve(start<<img.clusterBits, tc*cs)
	for i := range tc {
		if err := img.setRefcountLocked(start+i, 1, start, start+tc); err != nil {
			return err
		}
	}
	// Blocks first, then the table, then the header.
	if err := img.rbCache.flush(); err != nil {
		return err
	}
	if err := img.file.Pwrite(encodeTable(img.rt), start<<img.clusterBits, 0); err != nil {
		return err
	}
	if err := img.file.Flush(); err != nil {
		return err
	}
	img.hdr.RefcountTableOffset = uint64(start << img.clusterBits)
	img.hdr.RefcountTableClusters = uint32(tc)
	if err := img.writeHeaderLocked(); err != nil {
		return err
	}
	img.rtDirty = false
	img.pendingFree = append(img.pendingFree, freeRange{oldOff >> img.clusterBits, oldClusters})
	return nil
}

// findFreeLocked returns the first index >= from of n consecutive clusters
// with refcount 0 that do not overlap [avoidStart, avoidEnd).
//
// Preconditions: img.mu held.
func (img *Image) findFreeLocked(from, n, avoidStart, avoidEnd int64) (int64, error) {
	limit := img.maxHostClusters()
	start := from
	for idx := from; ; idx++ {
		if idx-start == n {
			return start, nil
		}
		if idx >= limit {
			return 0, fmt.Errorf("%w: qcow2: host offsets exhausted", block.ErrNoSpace)
		}
		if idx >= img.highWater {
			// Everything from here is free; skip ahead.
			if start < avoidEnd && avoidStart < start+n {
				start = max(avoidEnd, img.highWater)
				idx = start - 1
				continue
			}
			return start, nil
		}
		bi := idx / img.rbEntries
		if bi >= int64(len(img.rt)) || img.rt[bi] == 0 {
			if idx >= avoidStart && idx < avoidEnd {
				start = idx + 1
			}
			continue
		}
		rc, err := img.refcountLocked(idx)
		if err != nil {
			return 0, err
		}
		if rc != 0 || (idx >= avoidStart && idx < avoidEnd) {
			start = idx + 1
		}
	}
}

// reserve reserves host range [off, off+n) in the file (block.Preallocator)
// for clusters just allocated that are written whole: runs of data
// clusters, L2 tables, refcount blocks and tables. Reserving each such
// allocation, in allocation order, lets the host file system lay the file
// out in order, and costs it less than allocating block by block as the
// writes arrive. Clusters written in part (a copy-on-write of some
// subclusters, compressed clusters) are left alone: reserving them would
// allocate more than the writes do. Mixing matters on ext4: blocks left to
// delayed allocation get placed at writeback, between the reserved
// extents, and split the extent tree; reserving every whole-cluster
// allocation keeps the host file as compact as qemu-img's. Images with
// clusters under 64 KiB reserve nothing (img.prealloc is nil): ext4 places
// requests under 16 blocks in shared per-CPU areas, away from the file's
// other extents, which scatters a file of 4 KiB L2 tables and data runs
// into many extents (one more extent-tree block than qemu-img's output of
// a 512 MiB test image, test/convert/alloc_test.go).
func (img *Image) reserve(off, n int64) {
	if img.prealloc != nil {
		_ = img.prealloc.Preallocate(off, n)
	}
}

// allocClustersLocked allocates n contiguous host clusters, first from
// freed space, then at the end of the used area, and sets their refcounts
// to 1. It returns the host offset of the first.
//
// Preconditions: img.mu held.
func (img *Image) allocClustersLocked(n int64) (int64, error) {
	first, err := img.findFreeLocked(img.freeHint, n, 0, 0)
	if err != nil {
		return 0, err
	}
	if n == 1 || first == img.freeHint {
		img.freeHint = first + n
	}
	img.highWater = max(img.highWater, first+n)
	for i := range n {
		if err := img.setRefcountLocked(first+i, 1, first, first+n); err != nil {
			return 0, err
		}
	}
	return first << img.clusterBits, nil
}

// allocRunLocked allocates up to n contiguous host clusters at the first
// free cluster (freed space first, then the end of the used area), fewer
// when the free run there is shorter, and sets their refcounts to 1. It
// returns the host offset of the first and how many were allocated (at
// least 1). Unlike allocClustersLocked(n) it never scans past the first
// free cluster for a run long enough, so its cost does not grow with the
// fragmentation of the image.
//
// Preconditions: img.mu held; n >= 1.
func (img *Image) allocRunLocked(n int64) (int64, int64, error) {
	first, err := img.findFreeLocked(img.freeHint, 1, 0, 0)
	if err != nil {
		return 0, 0, err
	}
	count := min(n, img.maxHostClusters()-first)
	for k := int64(1); k < count; k++ {
		idx := first + k
		if idx >= img.highWater {
			break // everything from here is free
		}
		rc, err := img.refcountLocked(idx)
		if err != nil {
			return 0, 0, err
		}
		if rc != 0 {
			count = k
			break
		}
	}
	if first == img.freeHint {
		img.freeHint = first + count
	}
	img.highWater = max(img.highWater, first+count)
	for i := range count {
		if err := img.setRefcountLocked(first+i, 1, first, first+count); err != nil {
			return 0, 0, err
		}
	}
	return first << img.clusterBits, count, nil
}

// freeClustersLater queues a reference drop for n clusters from host
// offset off; it is applied at the next flush, after the metadata that no
// longer points at them is durable.
//
// Preconditions: img.mu held.
func (img *Image) freeClustersLater(off, n int64) {
	img.pendingFree = append(img.pendingFree, freeRange{off >> img.clusterBits, n})
}

// freeMappingLater queues the drop of the host storage of a mapping.
//
// Preconditions: img.mu held.
func (img *Image) freeMappingLater(m mapping) {
	switch {
	case m.compressed:
		first := m.compOff >> img.clusterBits
		last := (m.compOff + m.compLen - 1) >> img.clusterBits
		img.freeClustersLater(first<<img.clusterBits, last-first+1)
	case m.host != 0:
		img.freeClustersLater(m.host, 1)
	}
}

// applyFreesLocked drops the queued references and discards host clusters
// whose refcount reaches 0.
//
// Preconditions: img.mu held; the metadata that referenced them is durable.
func (img *Image) applyFreesLocked() error {
	frees := img.pendingFree
	img.pendingFree = nil
	img.compNext = 0 // the packing cluster may be among the freed
	for _, f := range frees {
		for idx := f.first; idx < f.first+f.count; idx++ {
			rc, err := img.refcountLocked(idx)
			if err != nil {
				return err
			}
			if rc == 0 {
				return corruptf("freeing cluster %d whose refcount is already 0", idx)
			}
			if err := img.setRefcountLocked(idx, rc-1, 0, 0); err != nil {
				return err
			}
			if rc == 1 {
				// A hint: a node that cannot discard keeps the bytes.
				_ = img.file.Discard(idx<<img.clusterBits, img.clusterSize, 0)
			}
		}
	}
	return nil
}

package qcow2

import (
	"encoding/binary"

	"github.com/thinblk/thinblk/block"
)

// BlockStatus describes the run starting at off in this image only, per
// unit (cluster or subcluster): Data|Allocated with the host offset for
// stored data, Data|Allocated|Compressed for compressed clusters,
// Zero|Allocated with the host offset for zero units that keep their host
// cluster (anchored), Zero for zero units without one, and no bits for
// unallocated units (read from the backing chain), with the host offset
// when the unit is an unallocated subcluster of a cluster that has one. Consecutive units with
// the same status (and contiguous host offsets) are merged, across L2
// tables: one call answers a whole run of equal clusters, however long.
//
// On an image that looks metadata-preallocated (see metaPrealloc, decided
// at the first call as QEMU does), a run of stored data is then cut where
// the file's status changes under it, and is Data|Zero where the file has a
// hole or ends: such clusters read as zeros. That costs one file status
// request per data run; other images never ask the file.
//
// The L2 entries are decoded in place in the cached tables; a call
// allocates nothing. It holds the metadata lock for the walk (not for the
// file request), so it may run concurrently with anything.
func (img *Image) BlockStatus(off, n int64) (block.Extent, error) {
	size := img.Size()
	if err := block.CheckRange(off, n, size); err != nil || n == 0 {
		if err == nil {
			err = block.ErrInvalid
		}
		return block.Extent{}, img.opError("block-status", off, n, err)
	}
	img.mu.Lock()
	meta := img.metaPreallocLocked()
	ext, err := img.statusLocked(off, off+n)
	img.mu.Unlock()
	if err != nil {
		return block.Extent{}, img.opError("block-status", off, n, err)
	}
	if meta && ext.Status&(block.Data|block.Compressed) == block.Data && ext.HostOffset >= 0 {
		ext = img.fileZeroStatus(ext)
	}
	return ext, nil
}

// statusLocked is BlockStatus for [off, end).
//
// Preconditions: img.mu held; 0 <= off < end <= size.
func (img *Image) statusLocked(off, end int64) (block.Extent, error) {
	ext := block.Extent{Off: off, HostOffset: -1}
	first := true
	// add extends ext by [off, off+c) of status st at host offset host
	// (-1 when none), or reports false when the run ends before it.
	add := func(st block.Status, host, c int64) bool {
		if first {
			ext.Status, ext.HostOffset, first = st, host, false
		} else if st != ext.Status || (ext.HostOffset >= 0) != (host >= 0) ||
			(host >= 0 && host != ext.HostOffset+ext.Len) {
			return false
		}
		ext.Len += c
		return true
	}
	for off < end {
		vc := off >> img.clusterBits
		l1Index := vc / img.l2Entries
		index := vc % img.l2Entries
		// Guest bytes this L2 table describes from off.
		tableEnd := min(end, (l1Index+1)*img.l2Entries<<img.clusterBits)
		var l2Off int64
		if l1Index < int64(len(img.l1)) {
			l2Off = int64(img.l1[l1Index] & entryOffsetMask)
		}
		if l2Off == 0 {
			// No L2 table: every cluster is unallocated.
			if !add(0, -1, tableEnd-off) {
				return ext, nil
			}
			off = tableEnd
			continue
		}
		tbl, err := img.l2Cache.get(l2Off)
		if err != nil {
			return block.Extent{}, err
		}
		for ; off < tableEnd; index, vc = index+1, vc+1 {
			if k := img.unallocatedEntries(tbl, index, off, tableEnd); k > 0 {
				// A run of empty entries, taken in one step: most of a
				// sparse image's entries, in both tables of a chain.
				n := min(tableEnd, (vc+k)<<img.clusterBits) - off
				if !add(0, -1, n) {
					return ext, nil
				}
				off += n
				index, vc = index+k-1, vc+k-1
				continue
			}
			m, err := img.entryLocked(tbl, index, vc)
			if err != nil {
				return block.Extent{}, err
			}
			cstart := vc << img.clusterBits
			cend := min(tableEnd, cstart+img.clusterSize)
			if m.compressed {
				if !add(block.Data|block.Allocated|block.Compressed, -1, cend-off) {
					return ext, nil
				}
				off = cend
				continue
			}
			for off < cend {
				inCluster := off - cstart
				u := inCluster / img.unitSize
				c := min(cend-off, (u+1)*img.unitSize-inCluster)
				var st block.Status
				host := int64(-1)
				switch {
				case m.alloc&(1<<u) != 0:
					st, host = block.Data|block.Allocated, m.host+inCluster
				case m.zero&(1<<u) != 0:
					st = block.Zero
					if m.host != 0 {
						st, host = block.Zero|block.Allocated, m.host+inCluster
					}
				case m.host != 0:
					// An unallocated subcluster of a cluster that has a
					// host cluster: no status bits, but the host offset
					// is known (qemu-img map shows it).
					host = m.host + inCluster
				}
				if !add(st, host, c) {
					return ext, nil
				}
				off += c
			}
		}
	}
	return ext, nil
}

// unallocatedEntries counts the all-zero L2 entries (and bitmaps) from
// index on that lie in guest range [off, end), starting at the cluster of
// off: clusters that are unallocated, with nothing to validate. It returns
// 0 when the entry at index is not empty.
func (img *Image) unallocatedEntries(tbl []byte, index, off, end int64) int64 {
	es := img.l2EntrySize
	limit := min(img.l2Entries, index+(end-(off>>img.clusterBits<<img.clusterBits)+img.clusterSize-1)>>img.clusterBits)
	k := index
	for ; k < limit; k++ {
		e := tbl[k*es : (k+1)*es]
		if binary.BigEndian.Uint64(e) != 0 || (es > 8 && binary.BigEndian.Uint64(e[8:]) != 0) {
			break
		}
	}
	return k - index
}

package qcow2

import "github.com/thinblk/thinblk/block"

// BlockStatus describes the run starting at off in this image only, per
// unit (cluster or subcluster): Data|Allocated with the host offset for
// stored data, Data|Allocated|Compressed for compressed clusters,
// Zero|Allocated with the host offset for zero units that keep their host
// cluster (anchored), Zero for zero units without one, and no bits for
// unallocated units (read from the backing chain). Consecutive units with
// the same status (and contiguous host offsets) are merged.
func (img *Image) BlockStatus(off, n int64) (block.Extent, error) {
	size := img.Size()
	if err := block.CheckRange(off, n, size); err != nil || n == 0 {
		if err == nil {
			err = block.ErrInvalid
		}
		return block.Extent{}, img.opError("block-status", off, n, err)
	}
	img.mu.Lock()
	defer img.mu.Unlock()
	ext := block.Extent{Off: off, HostOffset: -1}
	first := true
	end := off + n
	for off < end {
		vc := off >> img.clusterBits
		ms, err := img.lookupLocked(vc, ((end-1)>>img.clusterBits)-vc+1)
		if err != nil {
			return block.Extent{}, img.opError("block-status", off, n, err)
		}
		for i, m := range ms {
			cstart := (vc + int64(i)) << img.clusterBits
			for off < end && off < cstart+img.clusterSize {
				inCluster := off - cstart
				u := inCluster / img.unitSize
				c := min(end-off, (u+1)*img.unitSize-inCluster)
				var st block.Status
				host := int64(-1)
				switch {
				case m.compressed:
					st = block.Data | block.Allocated | block.Compressed
				case m.alloc&(1<<u) != 0:
					st, host = block.Data|block.Allocated, m.host+inCluster
				case m.zero&(1<<u) != 0:
					st = block.Zero
					if m.host != 0 {
						st, host = block.Zero|block.Allocated, m.host+inCluster
					}
				}
				if first {
					ext.Status, ext.HostOffset, first = st, host, false
				} else if st != ext.Status || (ext.HostOffset >= 0) != (host >= 0) ||
					(host >= 0 && host != ext.HostOffset+ext.Len) {
					return ext, nil
				}
				ext.Len += c
				off += c
			}
		}
	}
	return ext, nil
}

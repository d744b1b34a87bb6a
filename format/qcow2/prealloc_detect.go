package qcow2

import "github.com/thinblk/thinblk/block"

// metaPrealloc is the state of QEMU's "preallocated metadata" heuristic for
// one open image, kept so that block status agrees with qemu-img map and
// qemu-nbd byte for byte.
//
// An image created with preallocation=metadata has an L2 entry with a host
// cluster for every guest cluster, but the host file has holes under them:
// the clusters are "data" in the qcow2 sense and read as zeros. QEMU (7.2,
// qcow2_detect_metadata_preallocation and the BDRV_BLOCK_RECURSE path of
// bdrv_co_block_status) decides once per open image, at the first block
// status request, whether the image looks like that: the clusters the
// refcounts say are in use, counted up to the end of the file, reach at
// least max(real*10/9, real+2), where real is the file's allocated bytes
// (st_blocks*512) in whole clusters. Only then does a data cluster's status
// also ask the file layer for its host range: where the file has a hole (or
// ends), the run is reported as data that reads zeros. Images that are not
// detected never ask, even where the file has holes under data clusters
// (qemu-io leaves those).
//
// Guarded by Image.mu; decided at most once per open image and never
// revised, like QEMU's (a later write or discard does not change it).
type metaPrealloc struct {
	checked bool // the detection ran
	on      bool // the image looks metadata-preallocated
}

// fileAllocator is implemented by file nodes that report their allocated
// bytes (st_blocks*512) without the rest of Info (the watermark walk).
// When the node below does not, Info is used.
type fileAllocator interface {
	AllocatedBytes() (int64, error)
}

// metaPreallocLocked returns whether the image is treated as
// metadata-preallocated, running the detection on the first call.
//
// Preconditions: img.mu held.
func (img *Image) metaPreallocLocked() bool {
	if !img.meta.checked {
		// Errors (a refcount block that cannot be read, a file that cannot
		// say its allocation) make the answer "no", as in QEMU.
		on, err := img.detectMetaPreallocLocked()
		img.meta.on, img.meta.checked = on && err == nil, true
	}
	return img.meta.on
}

// detectMetaPreallocLocked counts the host clusters with a nonzero refcount
// below the end of the file, stopping as soon as the count reaches the
// threshold. The count can only reach it when the file has fewer allocated
// clusters than the image uses, so on an ordinary image no refcount block
// is read at all: no cluster at or above the allocator's high-water mark is
// in use, and that mark is below the threshold whenever the file is
// (nearly) fully allocated up to it. Otherwise the walk reads each refcount
// block covering the file once, through the refcount cache.
//
// Preconditions: img.mu held.
func (img *Image) detectMetaPreallocLocked() (bool, error) {
	fileLen := img.file.Size()
	real, err := img.fileAllocatedBytes()
	if err != nil {
		return false, err
	}
	if real < 0 {
		// Not known (a block device). QEMU reads st_blocks there too (0,
		// so it always detects), but a device reports data everywhere,
		// so asking it changes no answer.
		return false, nil
	}
	realClusters := real / img.clusterSize
	threshold := max(realClusters*10/9, realClusters+2)
	end := (fileLen + img.clusterSize - 1) >> img.clusterBits
	if min(end, img.highWater) < threshold {
		return false, nil
	}
	end = min(end, img.highWater)
	var count int64
	order := img.hdr.RefcountOrder
	for bi := int64(0); bi*img.rbEntries < end && count < threshold; bi++ {
		if bi >= int64(len(img.rt)) {
			break
		}
		rb := int64(img.rt[bi])
		if rb == 0 {
			continue
		}
		blk, err := img.rbCache.get(rb)
		if err != nil {
			return false, err
		}
		n := min(img.rbEntries, end-bi*img.rbEntries)
		for i := int64(0); i < n && count < threshold; i++ {
			if refcountAt(blk, i, order) != 0 {
				count++
			}
		}
	}
	return count >= threshold, nil
}

// fileAllocatedBytes returns the bytes the file node has allocated on the
// host, or -1 when it does not know.
func (img *Image) fileAllocatedBytes() (int64, error) {
	if fa, ok := block.As[fileAllocator](img.file); ok {
		return fa.AllocatedBytes()
	}
	fi, err := img.file.Info()
	if err != nil {
		return 0, err
	}
	return fi.AllocatedBytes, nil
}

// fileZeroStatus refines ext, a run of stored data (Data, not Compressed,
// with a host offset) of a metadata-preallocated image, by the status of
// its host range in the file, as QEMU's recursion does: the run is cut
// where the file's current extent ends, and becomes Data|Zero (plus
// Allocated when the file keeps storage reserved there) where the file has
// a hole. A hole that reaches the end of the file, or a host range starting
// past it, makes the whole run Data|Zero: the file reads zeros there. An
// error from the file leaves ext as it is (the file's answer is extra
// information, not needed for correctness).
//
// It takes no lock of the image: ext was computed under it, and a write
// racing with the call may or may not be seen, as with any status answer.
func (img *Image) fileZeroStatus(ext block.Extent) block.Extent {
	fileLen := img.file.Size()
	host := ext.HostOffset
	if host >= fileLen {
		ext.Status = block.Data | block.Zero
		return ext
	}
	fe, err := img.file.BlockStatus(host, min(ext.Len, fileLen-host))
	if err != nil || fe.Len <= 0 {
		return ext
	}
	if fe.Status&block.Zero == 0 {
		ext.Len = min(ext.Len, fe.Len)
		return ext
	}
	if host+fe.Len < fileLen {
		ext.Len = min(ext.Len, fe.Len)
	}
	ext.Status = block.Data | block.Zero | fe.Status&block.Allocated
	return ext
}

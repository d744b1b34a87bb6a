package vdi

import (
	"fmt"

	"github.com/thinblk/thinblk/block"
)

// Check verifies the block map, as qemu-img check does for VDI, and one
// thing more. It returns one line per problem found ("ERROR: ..."); each
// line is one corruption:
//
//   - an entry naming a data block at or past blocks_in_image ("block index
//     3 too large, is 100"), as qemu;
//   - two entries naming the same data block, as qemu (qemu's line names
//     the data block twice; ours names both entries);
//   - header blocks_allocated differing from the number of entries that
//     name a data block below blocks_in_image, as qemu ("allocated blocks
//     mismatch, is 4, should be 3": counted, then the header's);
//   - an entry whose data block starts, or ends (the part of the block
//     inside the virtual disk), past the end of the file: a truncated
//     image. qemu-img does not check this (it reads zeros there); thinblk
//     reports it because its reads of such a block fail.
//
// Check reads only the in-memory map and the file size; it may run while
// nothing writes to the image. VDI has no repair (qemu-img check -r fails
// on VDI with "This image format does not support checks" too): with
// repair set, Check returns an error wrapping block.ErrNotSupported and
// checks nothing. repaired is always 0.
func (img *Image) Check(repair bool) (problems []string, repaired int, err error) {
	if repair {
		return nil, 0, fmt.Errorf("vdi: repair (-r): %w (qemu-img cannot repair vdi images either)", block.ErrNotSupported)
	}
	img.allocMu.Lock()
	headerAllocated := img.hdr.BlocksAllocated
	img.allocMu.Unlock()

	blocks := uint32(len(img.bmap))
	fileSize := img.file.Size()
	used := make([]uint64, (int64(blocks)+63)/64) // data blocks named so far
	var owner []uint32                            // data block -> first entry; built on the first duplicate
	var counted uint32
	for i := uint32(0); i < blocks; i++ {
		e := img.bmap[i].Load()
		if e >= entryDiscarded {
			continue
		}
		if e >= blocks {
			problems = append(problems, fmt.Sprintf("ERROR: block index %d too large, is %d (the image has %d blocks)", i, e, blocks))
			continue
		}
		counted++
		if used[e/64]&(1<<(e%64)) != 0 {
			if owner == nil {
				owner = img.firstOwners(i)
			}
			problems = append(problems, fmt.Sprintf("ERROR: block index %d also used by %d (both name data block %d)", i, owner[e], e))
			continue
		}
		used[e/64] |= 1 << (e % 64)
		if owner != nil {
			owner[e] = i
		}
		start := int64(img.hdr.OffsetData) + int64(e)*img.stride
		inDisk := min(img.block, img.size-int64(i)*img.block) // the last block may be partly outside the disk
		end := start + int64(img.hdr.BlockExtra) + inDisk
		switch {
		case start >= fileSize:
			problems = append(problems, fmt.Sprintf("ERROR: block index %d points at data block %d at offset %d, past the end of the file (%d bytes): the image has probably been truncated", i, e, start, fileSize))
		case end > fileSize:
			problems = append(problems, fmt.Sprintf("ERROR: block index %d points at data block %d at offset %d, which ends at %d, past the end of the file (%d bytes): the image has probably been truncated", i, e, start, end, fileSize))
		}
	}
	if counted != headerAllocated {
		problems = append(problems, fmt.Sprintf("ERROR: allocated blocks mismatch, is %d, should be %d", counted, headerAllocated))
	}
	return problems, 0, nil
}

// firstOwners maps every data block named by an entry before entry limit
// to the first entry naming it. Only built when a duplicate turns up (and
// kept up to date by the caller from then on), so that a clean check
// allocates one bit per block, not four bytes.
func (img *Image) firstOwners(limit uint32) []uint32 {
	owner := make([]uint32, len(img.bmap))
	seen := make([]bool, len(img.bmap))
	for i := uint32(0); i < limit; i++ {
		e := img.bmap[i].Load()
		if e < uint32(len(img.bmap)) && !seen[e] {
			owner[e], seen[e] = i, true
		}
	}
	return owner
}

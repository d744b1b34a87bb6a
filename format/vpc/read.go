package vpc

import (
	"fmt"

	"github.com/thinblk/thinblk/block"
)

// run is how a run of guest bytes is stored: present in this image at
// hostOffset (present), or absent here.
type run struct {
	length     int64
	present    bool
	hostOffset int64
}

// lookup describes the run starting at off (off < img.size, n > 0) of a
// dynamic image, at most n bytes long and never crossing a block.
func (img *Image) lookup(off, n int64) (run, error) {
	blockIndex := off / img.blockSize
	inBlock := off % img.blockSize
	n = min(n, img.blockSize-inBlock, img.size-off)
	entry := img.batEntry(blockIndex) // blockIndex < len(bat): checked at open
	if entry == batUnallocated {
		return run{length: n}, nil
	}
	bitmapOff := int64(entry) * sectorSize
	dataOff := bitmapOff + img.bitmapSize
	fileSize := img.file.Size()
	if dataOff > fileSize || inBlock+n > fileSize-dataOff {
		return run{}, fmt.Errorf("vpc: %w: block %d at %d (bitmap %d bytes, block %d bytes) does not fit a file of %d bytes",
			block.ErrCorrupt, blockIndex, bitmapOff, img.bitmapSize, img.blockSize, fileSize)
	}
	// Read the part of the bitmap that covers [off, off+n).
	firstSector := inBlock / sectorSize
	lastSector := (inBlock + n - 1) / sectorSize
	firstByte, lastByte := firstSector/8, lastSector/8
	bm := make([]byte, lastByte-firstByte+1)
	if err := img.file.Pread(bm, bitmapOff+firstByte); err != nil {
		return run{}, err
	}
	bit := func(sector int64) bool {
		i := sector/8 - firstByte
		return bm[i]&(0x80>>(sector%8)) != 0
	}
	present := bit(firstSector)
	s := firstSector + 1
	for s <= lastSector && bit(s) == present {
		s++
	}
	length := min(s*sectorSize-inBlock, n)
	r := run{length: length, present: present}
	if present {
		r.hostOffset = dataOff + inBlock
	}
	return r, nil
}

// Pread reads guest bytes: a fixed image's from its file; a dynamic image's
// present sectors from their blocks, absent ones from the parent or as
// zeros. Safe for concurrent use.
func (img *Image) Pread(p []byte, off int64) error {
	if err := img.check("pread", off, int64(len(p))); err != nil {
		return err
	}
	if img.dyn == nil {
		return img.file.Pread(p, off)
	}
	for len(p) > 0 {
		r, err := img.lookup(off, int64(len(p)))
		if err != nil {
			return &block.OpError{Op: "pread", Node: "vpc", Off: off, Len: int64(len(p)), Err: err}
		}
		chunk := p[:r.length]
		switch {
		case r.present:
			err = img.file.Pread(chunk, r.hostOffset)
		case img.backing != nil:
			err = readBacking(img.backing, chunk, off)
		default:
			clear(chunk)
		}
		if err != nil {
			return err
		}
		p = p[r.length:]
		off += r.length
	}
	return nil
}

// readBacking reads p at off from a parent that may be shorter than the
// child (the part past its end reads as zeros).
func readBacking(parent block.Driver, p []byte, off int64) error {
	ps := parent.Size()
	if off >= ps {
		clear(p)
		return nil
	}
	n := min(int64(len(p)), ps-off)
	clear(p[n:])
	return parent.Pread(p[:n], off)
}

// BlockStatus reports a fixed image's file status, or a dynamic image's
// present sectors as Data|Allocated (with their host offset). Absent
// sectors are Zero in a dynamic image (it has no parent) and not allocated
// here in a differencing image (the parent answers).
func (img *Image) BlockStatus(off, n int64) (block.Extent, error) {
	if err := img.check("block-status", off, n); err != nil {
		return block.Extent{}, err
	}
	if n == 0 {
		return block.Extent{}, &block.OpError{Op: "block-status", Node: "vpc", Off: off, Err: fmt.Errorf("%w: zero length", block.ErrInvalid)}
	}
	if img.dyn == nil {
		e, err := img.file.BlockStatus(off, n)
		if err != nil {
			return block.Extent{}, err
		}
		if e.Off != off || e.Len <= 0 || e.Len > n {
			return block.Extent{}, &block.OpError{Op: "block-status", Node: "vpc", Off: off, Len: n,
				Err: fmt.Errorf("%w: file node answered run %d+%d for %d+%d", block.ErrCorrupt, e.Off, e.Len, off, n)}
		}
		e.HostOffset = off
		return e, nil
	}
	// Merge consecutive runs of the same kind (up to n bytes).
	var first run
	var total int64
	for runs := 0; total < n && runs < maxMergedRuns; runs++ {
		r, err := img.lookup(off+total, n-total)
		if err != nil {
			return block.Extent{}, &block.OpError{Op: "block-status", Node: "vpc", Off: off, Len: n, Err: err}
		}
		if total == 0 {
			first = r
		} else if r.present != first.present || (r.present && r.hostOffset != first.hostOffset+total) {
			break
		}
		total += r.length
	}
	if !first.present {
		if img.footer.DiskType == diskDynamic {
			// No parent can exist: the run reads as zeros (as qemu-img
			// map reports it).
			return block.Extent{Off: off, Len: total, Status: block.Zero, HostOffset: -1}, nil
		}
		return block.Extent{Off: off, Len: total, HostOffset: -1}, nil
	}
	return block.Extent{Off: off, Len: total, Status: block.Data | block.Allocated, HostOffset: first.hostOffset}, nil
}

func (img *Image) check(op string, off, n int64) error {
	if err := block.CheckRange(off, n, img.size); err != nil {
		return &block.OpError{Op: op, Node: "vpc", Off: off, Len: n, Err: err}
	}
	return nil
}

// writable returns an error unless the image is a fixed or dynamic image
// opened read-write.
func (img *Image) writable(op string, off, n int64) error {
	if img.readOnly || (img.dyn != nil && img.footer.DiskType != diskDynamic) {
		what := "opened read-only"
		if !img.readOnly {
			what = "thinblk does not write differencing VHD images"
		}
		return &block.OpError{Op: op, Node: "vpc", Off: off, Len: n, Err: fmt.Errorf("%w: %s", block.ErrReadOnly, what)}
	}
	return img.check(op, off, n)
}

// Pwrite writes to a fixed image's file (the footer after the data is never
// touched), or into a dynamic image's blocks (see write.go).
func (img *Image) Pwrite(p []byte, off int64, flags block.Flags) error {
	if err := img.writable("pwrite", off, int64(len(p))); err != nil {
		return err
	}
	if img.dyn != nil {
		return img.pwriteDynamic(p, off, flags)
	}
	return img.file.Pwrite(p, off, flags)
}

// Discard passes a fixed image's discard to its file; it does nothing in a
// dynamic image (blocks are never freed).
func (img *Image) Discard(off, n int64, flags block.Flags) error {
	if err := img.writable("discard", off, n); err != nil {
		return err
	}
	if img.dyn != nil {
		return nil
	}
	return img.file.Discard(off, n, flags)
}

// WriteZeroes passes a fixed image's request to its file; in a dynamic
// image, unallocated blocks already read as zeros and allocated ones are
// zeroed by the file.
func (img *Image) WriteZeroes(off, n int64, flags block.Flags) error {
	if err := img.writable("write-zeroes", off, n); err != nil {
		return err
	}
	if img.dyn != nil {
		return img.zeroDynamic(off, n, flags)
	}
	return img.file.WriteZeroes(off, n, flags)
}

// maxMergedRuns bounds the block lookups one BlockStatus call merges, so
// that a call on a huge, mostly empty image returns in bounded time (the
// caller asks again from the end of the run).
const maxMergedRuns = 1 << 16

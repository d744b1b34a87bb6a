package vdi

import (
	"encoding/binary"
	"fmt"

	"github.com/thinblk/thinblk/block"
)

func (img *Image) writable(op string, off, n int64) error {
	if img.readOnly {
		return img.opErr(op, off, n, fmt.Errorf("vdi: %w", block.ErrReadOnly))
	}
	if err := block.CheckRange(off, n, img.size); err != nil {
		return img.opErr(op, off, n, err)
	}
	return nil
}

// Pwrite writes p at off, allocating blocks on first write. With FUA the
// data and metadata are flushed before it returns.
func (img *Image) Pwrite(p []byte, off int64, flags block.Flags) error {
	if err := img.writable("pwrite", off, int64(len(p))); err != nil {
		return err
	}
	for len(p) > 0 {
		chunk := min(int64(len(p)), img.block-off%img.block)
		if err := img.writeInBlock(p[:chunk], off); err != nil {
			return img.opErr("pwrite", off, chunk, err)
		}
		p = p[chunk:]
		off += chunk
	}
	if flags.Has(block.FUA) {
		return img.file.Flush()
	}
	return nil
}

// writeInBlock writes p (inside one block) at off.
func (img *Image) writeInBlock(p []byte, off int64) error {
	i := off / img.block
	if e := img.bmap[i].Load(); e < entryDiscarded {
		return img.file.Pwrite(p, img.host(e, off), 0)
	}
	img.allocMu.Lock()
	defer img.allocMu.Unlock()
	if e := img.bmap[i].Load(); e < entryDiscarded {
		return img.file.Pwrite(p, img.host(e, off), 0) // allocated meanwhile
	}
	return img.allocateLocked(i, p, off%img.block)
}

// allocateLocked appends a data block for disk block i holding p at within
// (zeros elsewhere), then records it in the map and the header.
// Preconditions: allocMu is held; block i is unallocated or discarded.
func (img *Image) allocateLocked(i int64, p []byte, within int64) error {
	n := img.nextBlock
	if n >= img.hdr.BlocksInImage {
		return fmt.Errorf("vdi: %w: all %d data blocks are used", block.ErrNoSpace, n)
	}
	buf := make([]byte, img.stride)
	copy(buf[int64(img.hdr.BlockExtra)+within:], p)
	at := int64(img.hdr.OffsetData) + int64(n)*img.stride
	if err := img.file.Pwrite(buf, at, 0); err != nil {
		return err
	}
	var e [4]byte
	binary.LittleEndian.PutUint32(e[:], n)
	if err := img.file.Pwrite(e[:], int64(img.hdr.OffsetBmap)+i*4, 0); err != nil {
		return err
	}
	img.bmap[i].Store(n)
	img.nextBlock = n + 1
	img.hdr.BlocksAllocated = n + 1
	binary.LittleEndian.PutUint32(e[:], n+1)
	return img.file.Pwrite(e[:], 0x184, 0)
}

// WriteZeroes makes [off, off+n) read as zeros: unallocated and discarded
// blocks already do; allocated blocks get zero bytes written (or, with
// NoFallback, the call fails with block.ErrNotSupported before writing
// anything).
func (img *Image) WriteZeroes(off, n int64, flags block.Flags) error {
	if err := img.writable("write-zeroes", off, n); err != nil {
		return err
	}
	if flags.Has(block.NoFallback) {
		for o := off; o < off+n; o += img.block - o%img.block {
			if img.bmap[o/img.block].Load() < entryDiscarded {
				return img.opErr("write-zeroes", off, n, fmt.Errorf("vdi: %w: zeroing allocated blocks writes zero bytes", block.ErrNotSupported))
			}
		}
	}
	var zeros []byte
	for o := off; o < off+n; {
		chunk := min(off+n-o, img.block-o%img.block)
		if e := img.bmap[o/img.block].Load(); e < entryDiscarded {
			if zeros == nil {
				zeros = make([]byte, img.block)
			}
			if err := img.file.Pwrite(zeros[:chunk], img.host(e, o), 0); err != nil {
				return img.opErr("write-zeroes", o, chunk, err)
			}
		}
		o += chunk
	}
	if flags.Has(block.FUA) {
		return img.file.Flush()
	}
	return nil
}

// Discard does nothing (a hint; VDI blocks are never freed here).
func (img *Image) Discard(off, n int64, _ block.Flags) error {
	return img.writable("discard", off, n)
}

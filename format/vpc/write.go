package vpc

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/thinblk/thinblk/block"
)

// Writing a dynamic image. A write to a block that is not allocated
// appends the block where the footer was: the footer is first written
// again past the new block (so the file always ends with a footer, and
// the copy at offset 0 covers the moment in between), then the block's
// bitmap with every bit set (as QEMU does: the unwritten part of the
// block reads as zeros from the file), then the data. The BAT entry changes
// in memory and reaches the file on Flush or Close, after the data is
// flushed, so the file never maps a block whose bitmap may not be there.

// prepareWrite checks, when a dynamic image is opened read-write, that it
// ends with its footer and that no block reaches past it, and places new
// blocks after every existing one.
func (img *Image) prepareWrite(fileSize int64) error {
	b := make([]byte, footerSize)
	if err := img.file.Pread(b, fileSize-footerSize); err != nil {
		return err
	}
	if _, err := parseFooter(b); err != nil {
		return fmt.Errorf("vpc: %w: the footer at the end of the file is damaged (%v); open the image read-only", block.ErrCorrupt, err)
	}
	for i, e := range img.bat {
		if e == batUnallocated {
			continue
		}
		if end := int64(e)*sectorSize + img.bitmapSize + img.blockSize; end > fileSize-footerSize {
			return fmt.Errorf("vpc: %w: block %d ends at %d, past the footer at %d; open the image read-only", block.ErrCorrupt, i, end, fileSize-footerSize)
		}
	}
	img.footerOffset = fileSize - footerSize
	return nil
}

// batEntry returns BAT entry i.
func (img *Image) batEntry(i int64) uint32 {
	img.batMu.RLock()
	defer img.batMu.RUnlock()
	return img.bat[i]
}

// pwriteDynamic writes p at off into the blocks of a dynamic image.
// Preconditions: the range was checked.
func (img *Image) pwriteDynamic(p []byte, off int64, flags block.Flags) error {
	for len(p) > 0 {
		blockIndex, inBlock := off/img.blockSize, off%img.blockSize
		n := min(int64(len(p)), img.blockSize-inBlock)
		e := img.batEntry(blockIndex)
		var err error
		if e != batUnallocated {
			err = img.file.Pwrite(p[:n], int64(e)*sectorSize+img.bitmapSize+inBlock, 0)
		} else {
			err = img.allocate(blockIndex, inBlock, p[:n])
		}
		if err != nil {
			return &block.OpError{Op: "pwrite", Node: "vpc", Off: off, Len: n, Err: err}
		}
		p, off = p[n:], off+n
	}
	if flags.Has(block.FUA) {
		return img.flushBAT()
	}
	return nil
}

// allocate appends block blockIndex (see above) and writes data at
// inBlock in it.
func (img *Image) allocate(blockIndex, inBlock int64, data []byte) error {
	img.allocMu.Lock()
	defer img.allocMu.Unlock()
	if e := img.batEntry(blockIndex); e != batUnallocated { // allocated meanwhile
		return img.file.Pwrite(data, int64(e)*sectorSize+img.bitmapSize+inBlock, 0)
	}
	start := img.footerOffset
	if start/sectorSize > batUnallocated-1 {
		return fmt.Errorf("vpc: %w: the image file is too large for 32-bit sector offsets", block.ErrNoSpace)
	}
	newFooter := start + img.bitmapSize + img.blockSize
	if err := img.file.Pwrite(img.footer.encode(), newFooter, 0); err != nil {
		return err
	}
	if err := img.file.Pwrite(bytes.Repeat([]byte{0xff}, int(img.bitmapSize)), start, 0); err != nil {
		return err
	}
	if err := img.file.Pwrite(data, start+img.bitmapSize+inBlock, 0); err != nil {
		return err
	}
	img.batMu.Lock()
	img.bat[blockIndex] = uint32(start / sectorSize)
	img.batMu.Unlock()
	if img.dirtyBAT == nil {
		img.dirtyBAT = map[int64]bool{}
	}
	img.dirtyBAT[blockIndex] = true
	img.footerOffset = newFooter
	return nil
}

// zeroDynamic zeroes [off, off+n) of a dynamic image: unallocated blocks
// read as zeros already; allocated ones are zeroed by the file.
func (img *Image) zeroDynamic(off, n int64, flags block.Flags) error {
	if flags.Has(block.NoFallback) && !img.Caps().FastZero {
		return &block.OpError{Op: "write-zeroes", Node: "vpc", Off: off, Len: n, Err: fmt.Errorf("%w: no fast zeroing on this file", block.ErrNotSupported)}
	}
	for n > 0 {
		blockIndex, inBlock := off/img.blockSize, off%img.blockSize
		c := min(n, img.blockSize-inBlock)
		if e := img.batEntry(blockIndex); e != batUnallocated {
			if err := img.file.WriteZeroes(int64(e)*sectorSize+img.bitmapSize+inBlock, c, flags&^block.FUA); err != nil {
				return err
			}
		}
		off, n = off+c, n-c
	}
	if flags.Has(block.FUA) {
		return img.flushBAT()
	}
	return nil
}

// flushBAT flushes the data, writes the BAT sectors holding entries
// changed since the last call, and flushes again.
func (img *Image) flushBAT() error {
	if err := img.file.Flush(); err != nil {
		return err
	}
	img.allocMu.Lock()
	defer img.allocMu.Unlock()
	if len(img.dirtyBAT) == 0 {
		return nil
	}
	const perSector = sectorSize / 4
	sectors := map[int64]bool{}
	for i := range img.dirtyBAT {
		sectors[i/perSector] = true
	}
	order := make([]int64, 0, len(sectors))
	for s := range sectors {
		order = append(order, s)
	}
	slices.Sort(order)
	buf := make([]byte, sectorSize)
	for _, s := range order {
		first := s * perSector
		n := min(perSector, int64(len(img.bat))-first)
		img.batMu.RLock()
		for i := int64(0); i < n; i++ {
			binary.BigEndian.PutUint32(buf[4*i:], img.bat[first+i])
		}
		img.batMu.RUnlock()
		if err := img.file.Pwrite(buf[:4*n], int64(img.dyn.TableOffset)+4*first, 0); err != nil {
			return err
		}
	}
	clear(img.dirtyBAT)
	return img.file.Flush()
}

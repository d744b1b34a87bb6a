package vhdx

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/thinblk/thinblk/block"
)

// writable checks that a mutating request may run.
func (img *Image) writable(op string, off, n int64) error {
	if !img.canWrite() {
		why := "opened read-only"
		if img.meta.HasParent {
			why = "thinblk does not write differencing VHDX images"
		}
		return &block.OpError{Op: op, Node: "vhdx", Off: off, Len: n, Err: fmt.Errorf("%w: %s", block.ErrReadOnly, why)}
	}
	return img.check(op, off, n)
}

// Pwrite stores p at off: in place in allocated blocks, else in a new
// block appended to the file (see the package documentation). With FUA the
// data and the BAT are flushed before it returns.
func (img *Image) Pwrite(p []byte, off int64, flags block.Flags) error {
	if err := img.writable("pwrite", off, int64(len(p))); err != nil {
		return err
	}
	if err := img.updateHeader(); err != nil {
		return &block.OpError{Op: "pwrite", Node: "vhdx", Off: off, Len: int64(len(p)), Err: err}
	}
	g := img.geo
	for len(p) > 0 {
		blockIndex, inBlock := off/g.blockSize, off%g.blockSize
		n := min(int64(len(p)), g.blockSize-inBlock)
		e := img.entry(g.payloadIndex(blockIndex))
		var err error
		if entryState(e) == payloadFullyPresent {
			err = img.file.Pwrite(p[:n], entryOffset(e)+inBlock, 0)
		} else {
			err = img.allocate(blockIndex, inBlock, p[:n])
		}
		if err != nil {
			return &block.OpError{Op: "pwrite", Node: "vhdx", Off: off, Len: n, Err: err}
		}
		p, off = p[n:], off+n
	}
	if flags.Has(block.FUA) {
		return img.flushBAT()
	}
	return nil
}

// updateHeader runs before the first write after open, as [MS-VHDX] asks:
// it writes a header with the next sequence number and new FileWriteGuid
// and DataWriteGuid over the older header, and flushes, so that readers
// (and differencing children, whose parent_linkage names the
// DataWriteGuid) see that the image changed.
func (img *Image) updateHeader() error {
	if img.headerUpdated.Load() {
		return nil
	}
	img.allocMu.Lock()
	defer img.allocMu.Unlock()
	if img.headerUpdated.Load() {
		return nil
	}
	h := *img.header
	h.SequenceNumber++
	if _, err := rand.Read(h.FileWriteGUID[:]); err != nil {
		return err
	}
	if _, err := rand.Read(h.DataWriteGUID[:]); err != nil {
		return err
	}
	target := int64(header1Offset)
	if img.headerOffset == header1Offset {
		target = header2Offset
	}
	if err := img.file.Pwrite(h.encode(), target, 0); err != nil {
		return err
	}
	if err := img.file.Flush(); err != nil {
		return err
	}
	img.header, img.headerOffset = &h, target
	img.headerUpdated.Store(true)
	return nil
}

// allocate gives block blockIndex storage at the end of the file, writes
// data at inBlock in it (the rest reads as zeros: the file grows over it)
// and records it in the BAT.
func (img *Image) allocate(blockIndex, inBlock int64, data []byte) error {
	img.allocMu.Lock()
	defer img.allocMu.Unlock()
	g := img.geo
	idx := g.payloadIndex(blockIndex)
	if e := img.entry(idx); entryState(e) == payloadFullyPresent { // allocated meanwhile
		return img.file.Pwrite(data, entryOffset(e)+inBlock, 0)
	}
	host := roundUp(max(img.fileEnd, img.file.Size()), mib)
	end := host + g.blockSize
	if host+inBlock+int64(len(data)) < end {
		// Grow the file over the whole block first (the hole reads as
		// zeros); the data, written next, may end inside this last sector.
		if err := img.file.Pwrite(make([]byte, 512), end-512, 0); err != nil {
			return err
		}
	}
	if err := img.file.Pwrite(data, host+inBlock, 0); err != nil {
		return err
	}
	img.batMu.Lock()
	img.bat[idx] = makeEntry(payloadFullyPresent, host)
	img.batMu.Unlock()
	if img.dirtyBAT == nil {
		img.dirtyBAT = map[int64]bool{}
	}
	img.dirtyBAT[idx] = true
	img.fileEnd = end
	return nil
}

// flushBAT makes written data durable, then writes the BAT entries of
// blocks allocated since the last call (whole 4 KiB pages of the table,
// in order) and flushes again. A crash before the second flush loses the
// new blocks' mapping (their data was not yet flushed by the caller, so
// nothing promised is lost); it never leaves an entry that points at
// unwritten space.
func (img *Image) flushBAT() error {
	if err := img.file.Flush(); err != nil {
		return err
	}
	img.allocMu.Lock()
	defer img.allocMu.Unlock()
	if len(img.dirtyBAT) == 0 {
		return nil
	}
	const perPage = logSector / 8
	pages := map[int64]bool{}
	for idx := range img.dirtyBAT {
		pages[idx/perPage] = true
	}
	order := make([]int64, 0, len(pages))
	for p := range pages {
		order = append(order, p)
	}
	slices.Sort(order)
	buf := make([]byte, logSector)
	for _, p := range order {
		first := p * perPage
		n := min(perPage, int64(len(img.bat))-first)
		img.batMu.RLock()
		for i := int64(0); i < n; i++ {
			binary.LittleEndian.PutUint64(buf[i*8:], img.bat[first+i])
		}
		img.batMu.RUnlock()
		if err := img.file.Pwrite(buf[:n*8], img.batStart+first*8, 0); err != nil {
			return err
		}
	}
	clear(img.dirtyBAT)
	return img.file.Flush()
}

func roundUp(v, a int64) int64 { return (v + a - 1) / a * a }

// WriteZeroes makes [off, off+n) read as zeros: blocks that are not
// allocated already do; allocated blocks get zeros written by the file
// node (which may punch holes with MayUnmap). NoFallback fails unless the
// file zeroes fast (Caps().FastZero).
func (img *Image) WriteZeroes(off, n int64, flags block.Flags) error {
	if err := img.writable("write-zeroes", off, n); err != nil {
		return err
	}
	if flags.Has(block.NoFallback) && !img.Caps().FastZero {
		return &block.OpError{Op: "write-zeroes", Node: "vhdx", Off: off, Len: n, Err: fmt.Errorf("%w: no fast zeroing on this file", block.ErrNotSupported)}
	}
	if err := img.updateHeader(); err != nil {
		return &block.OpError{Op: "write-zeroes", Node: "vhdx", Off: off, Len: n, Err: err}
	}
	g := img.geo
	for n > 0 {
		blockIndex, inBlock := off/g.blockSize, off%g.blockSize
		c := min(n, g.blockSize-inBlock)
		if e := img.entry(g.payloadIndex(blockIndex)); entryState(e) == payloadFullyPresent {
			if err := img.file.WriteZeroes(entryOffset(e)+inBlock, c, flags&^block.FUA); err != nil {
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

// Discard does nothing (blocks are never freed; Caps().Discard is false).
func (img *Image) Discard(off, n int64, flags block.Flags) error {
	return img.writable("discard", off, n)
}

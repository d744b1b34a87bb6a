package vhdx

import (
	"fmt"

	"github.com/thinblk/thinblk/block"
)

// kind is how a run of guest bytes is stored in this image.
type kind int

const (
	absent   kind = iota // not here: the parent's, or zeros
	zero                 // reads as zeros (ZERO block without storage)
	anchored             // reads as zeros, storage kept at hostOffset (ZERO block with an offset)
	present              // stored at hostOffset
)

type run struct {
	length     int64
	kind       kind
	hostOffset int64
}

// entry returns BAT entry i.
func (img *Image) entry(i int64) uint64 {
	img.batMu.RLock()
	defer img.batMu.RUnlock()
	return img.bat[i]
}

// lookup describes the run starting at off (< size), at most n bytes long,
// within one payload block.
func (img *Image) lookup(off, n int64) (run, error) {
	g := img.geo
	blockIndex := off / g.blockSize
	inBlock := off % g.blockSize
	n = min(n, g.blockSize-inBlock, img.size-off)
	e := img.entry(g.payloadIndex(blockIndex))
	fileSize := img.file.Size()
	switch entryState(e) {
	case payloadNotPresent, payloadUndefined, payloadUnmapped:
		return run{length: n}, nil
	case payloadZero:
		if off := entryOffset(e); off != 0 {
			return run{length: n, kind: anchored, hostOffset: off + inBlock}, nil
		}
		return run{length: n, kind: zero}, nil
	case payloadFullyPresent:
		host := entryOffset(e) + inBlock
		if host > fileSize || n > fileSize-host {
			return run{}, fmt.Errorf("vhdx: %w: block %d at %d does not fit a file of %d bytes", block.ErrCorrupt, blockIndex, entryOffset(e), fileSize)
		}
		return run{length: n, kind: present, hostOffset: host}, nil
	case payloadPartiallyPresent:
		if !img.meta.HasParent {
			return run{}, fmt.Errorf("vhdx: %w: partially present block %d in an image without a parent", block.ErrCorrupt, blockIndex)
		}
		return img.lookupPartial(blockIndex, inBlock, n, e)
	}
	return run{}, fmt.Errorf("vhdx: %w: block %d has BAT state %d", block.ErrCorrupt, blockIndex, entryState(e))
}

// lookupPartial reads the sector bitmap of a partially present block.
func (img *Image) lookupPartial(blockIndex, inBlock, n int64, e uint64) (run, error) {
	g := img.geo
	fileSize := img.file.Size()
	be := img.entry(g.bitmapIndex(blockIndex))
	if entryState(be) != bitmapPresent {
		return run{}, fmt.Errorf("vhdx: %w: block %d is partially present but its sector bitmap is not (state %d)", block.ErrCorrupt, blockIndex, entryState(be))
	}
	bitmapOff := entryOffset(be)
	if bitmapOff > fileSize || bitmapBlock > fileSize-bitmapOff {
		return run{}, fmt.Errorf("vhdx: %w: sector bitmap at %d does not fit a file of %d bytes", block.ErrCorrupt, bitmapOff, fileSize)
	}
	// Sector numbers within the chunk.
	chunkSector := (blockIndex % g.chunkRatio) * (g.blockSize / g.sectorSize)
	first := chunkSector + inBlock/g.sectorSize
	last := chunkSector + (inBlock+n-1)/g.sectorSize
	bm := make([]byte, last/8-first/8+1)
	if err := img.file.Pread(bm, bitmapOff+first/8); err != nil {
		return run{}, err
	}
	bit := func(s int64) bool { return bm[s/8-first/8]&(1<<(s%8)) != 0 }
	set := bit(first)
	s := first + 1
	for s <= last && bit(s) == set {
		s++
	}
	length := min((s-chunkSector)*g.sectorSize-inBlock, n)
	if !set {
		return run{length: length}, nil
	}
	host := entryOffset(e) + inBlock
	if host > fileSize || length > fileSize-host {
		return run{}, fmt.Errorf("vhdx: %w: block %d at %d does not fit a file of %d bytes", block.ErrCorrupt, blockIndex, entryOffset(e), fileSize)
	}
	return run{length: length, kind: present, hostOffset: host}, nil
}

// Pread reads guest bytes. Safe for concurrent use.
func (img *Image) Pread(p []byte, off int64) error {
	if err := img.check("pread", off, int64(len(p))); err != nil {
		return err
	}
	for len(p) > 0 {
		r, err := img.lookup(off, int64(len(p)))
		if err != nil {
			return &block.OpError{Op: "pread", Node: "vhdx", Off: off, Len: int64(len(p)), Err: err}
		}
		chunk := p[:r.length]
		switch {
		case r.kind == present:
			err = img.file.Pread(chunk, r.hostOffset)
		case r.kind == absent && img.backing != nil:
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

// readBacking reads p at off from a parent that may be shorter.
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

// BlockStatus reports present sectors as Data|Allocated with their host
// offset, ZERO blocks as Zero (Zero|Allocated when the entry keeps a file
// offset), and the rest as not allocated here.
func (img *Image) BlockStatus(off, n int64) (block.Extent, error) {
	if err := img.check("block-status", off, n); err != nil {
		return block.Extent{}, err
	}
	if n == 0 {
		return block.Extent{}, &block.OpError{Op: "block-status", Node: "vhdx", Off: off, Err: fmt.Errorf("%w: zero length", block.ErrInvalid)}
	}
	var first run
	var total int64
	for runs := 0; total < n && runs < maxMergedRuns; runs++ {
		r, err := img.lookup(off+total, n-total)
		if err != nil {
			return block.Extent{}, &block.OpError{Op: "block-status", Node: "vhdx", Off: off, Len: n, Err: err}
		}
		if total == 0 {
			first = r
		} else if r.kind != first.kind || ((r.kind == present || r.kind == anchored) && r.hostOffset != first.hostOffset+total) {
			break
		}
		total += r.length
	}
	e := block.Extent{Off: off, Len: total, HostOffset: -1}
	switch first.kind {
	case present:
		e.Status, e.HostOffset = block.Data|block.Allocated, first.hostOffset
	case zero:
		e.Status = block.Zero
	case anchored:
		e.Status, e.HostOffset = block.Zero|block.Allocated, first.hostOffset
	}
	return e, nil
}

func (img *Image) check(op string, off, n int64) error {
	if err := block.CheckRange(off, n, img.size); err != nil {
		return &block.OpError{Op: op, Node: "vhdx", Off: off, Len: n, Err: err}
	}
	return nil
}

// maxMergedRuns bounds the block lookups one BlockStatus call merges, so
// that a call on a huge, mostly empty image returns in bounded time (the
// caller asks again from the end of the run).
const maxMergedRuns = 1 << 16

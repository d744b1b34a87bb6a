package scsi

import (
	"github.com/thinblk/thinblk/block"
)

// Provisioning status of a GET LBA STATUS descriptor (SBC-4 table 65).
const (
	lbaMapped      = 0
	lbaDeallocated = 1
	lbaAnchored    = 2
)

// unmapDescriptor is one UNMAP block descriptor.
type unmapDescriptor struct {
	lba, blocks uint64
}

// parseUnmapList decodes an UNMAP parameter list (SBC-4 5.32.2): an 8-byte
// header with the UNMAP BLOCK DESCRIPTOR DATA LENGTH, then 16-byte
// descriptors. It checks lengths against the list it was given before
// reading anything, and never allocates more than max descriptors.
func parseUnmapList(p []byte, max int) ([]unmapDescriptor, *Sense) {
	if len(p) < 8 {
		return nil, &SenseParamListLength
	}
	bdLen := int(getU16(p[2:]))
	if bdLen > len(p)-8 {
		return nil, &SenseParamListLength
	}
	if bdLen%16 != 0 {
		return nil, &SenseInvalidFieldInParam
	}
	n := bdLen / 16
	if n > max {
		return nil, &SenseInvalidFieldInParam
	}
	descs := make([]unmapDescriptor, n)
	for i := range descs {
		d := p[8+16*i:]
		descs[i] = unmapDescriptor{lba: getU64(d), blocks: getU32(d[8:])}
	}
	return descs, nil
}

// unmapCmd serves UNMAP. All descriptors are validated before any range is
// touched: a bad list changes nothing.
func (lu *LU) unmapCmd(c *Command) {
	if !lu.writable {
		c.fail(SenseWriteProtected)
		return
	}
	anchor := c.CDB[1]&unmapFlagAnch != 0
	if anchor && !lu.cfg.Anchor {
		c.fail(SenseInvalidFieldInCDB)
		return
	}
	plen := int64(getU16(c.CDB[7:]))
	if plen == 0 {
		return
	}
	data, ok := dataOut(c, plen)
	if !ok {
		return
	}
	descs, bad := parseUnmapList(data, maxUnmapDescriptors)
	if bad != nil {
		c.fail(*bad)
		return
	}
	var total uint64
	for _, d := range descs {
		if !lu.inRange(d.lba, d.blocks) {
			c.fail(SenseLBAOutOfRange)
			return
		}
		total += d.blocks // at most 256 * 2^32: no overflow
	}
	if total > maxUnmapBlocks {
		c.fail(SenseInvalidFieldInParam)
		return
	}
	for _, d := range descs {
		if d.blocks == 0 {
			continue
		}
		if err := lu.deallocate(d.lba, d.blocks, anchor); err != nil {
			c.fail(senseFor(opWrite, err))
			return
		}
	}
}

// deallocate applies the thin-provisioning policy to an UNMAP of a checked
// range:
//
//	anchor                 -> zeros with storage reserved (anchorRange)
//	discard=unmap, LBPRZ=1 -> WriteZeroes(MayUnmap): deallocated, reads zero
//	discard=unmap, LBPRZ=0 -> Discard (a hint)
//	discard=ignore, LBPRZ=1 -> zeros that keep their storage
//	discard=ignore, LBPRZ=0 -> nothing
func (lu *LU) deallocate(lba, blocks uint64, anchor bool) error {
	off, n := lu.byteRange(lba, blocks)
	var op func() error
	switch {
	case anchor && (lu.unmap || lu.cfg.LBPRZ):
		op = func() error { return lu.anchorRange(off, n) }
	case lu.unmap && lu.cfg.LBPRZ:
		op = func() error { return block.ZeroRange(lu.node, off, n, block.MayUnmap) }
	case lu.unmap:
		op = func() error { return block.DiscardRange(lu.node, off, n, 0) }
	case lu.cfg.LBPRZ:
		op = func() error { return block.ZeroRange(lu.node, off, n, 0) }
	default:
		return nil
	}
	hold := lu.locks.Lock(int64(lba), int64(lba+blocks))
	defer lu.locks.Unlock(hold)
	return op()
}

// writeSame serves WRITE SAME(10/16). NUMBER OF LOGICAL BLOCKS 0 means
// "to the end of the medium" (WSNZ=0), within MAXIMUM WRITE SAME LENGTH.
//
//	zero payload (or NDOB), UNMAP and ANCHOR -> anchored (anchorRange)
//	zero payload, UNMAP, discard=unmap      -> WriteZeroes(MayUnmap)
//	zero payload otherwise                  -> WriteZeroes
//	any other payload                       -> the block written repeatedly
func (lu *LU) writeSame(c *Command) {
	if !lu.writable {
		c.fail(SenseWriteProtected)
		return
	}
	r, _ := decodeLBA(c.CDB)
	ndob := c.CDB[0] == opWriteSame16 && r.flags&wsFlagNDOB != 0
	unmap := r.flags&wsFlagUnmap != 0
	anchor := r.flags&wsFlagAnchor != 0
	if r.flags&protectMask != 0 || anchor && (!unmap || !lu.cfg.Anchor) {
		c.fail(SenseInvalidFieldInCDB)
		return
	}
	if !lu.inRange(r.lba, r.blocks) {
		c.fail(SenseLBAOutOfRange)
		return
	}
	if r.blocks == 0 { // WSNZ=0: to the end of the medium
		r.blocks = lu.blocks - r.lba
	}
	if r.blocks > maxUnmapBlocks {
		c.fail(SenseInvalidFieldInCDB)
		return
	}
	var pattern []byte
	if !ndob {
		var ok bool
		if pattern, ok = dataOut(c, int64(lu.blockSize)); !ok {
			return
		}
	}
	zero := ndob || block.IsZero(pattern)
	off, n := lu.byteRange(r.lba, r.blocks)
	hold := lu.locks.Lock(int64(r.lba), int64(r.lba+r.blocks))
	defer lu.locks.Unlock(hold)
	var err error
	switch {
	case zero && anchor:
		err = lu.anchorRange(off, n)
	case zero && unmap && lu.unmap:
		err = block.ZeroRange(lu.node, off, n, block.MayUnmap)
	case zero:
		err = block.ZeroRange(lu.node, off, n, 0)
	default:
		err = lu.writePattern(pattern, off, n)
	}
	if err != nil {
		c.fail(senseFor(opWrite, err))
	}
}

// anchorRange makes [off, off+n) anchored: it reads as zeros and has
// storage reserved. Runs the node keeps no storage for (BlockStatus without
// Allocated: holes, unallocated qcow2 clusters) are first written with zero
// bytes, which allocates them; then the whole range is zeroed without
// unmapping, which keeps the storage (a qcow2 zero cluster with its host
// cluster). A node whose BlockStatus reports everything allocated is just
// zeroed.
func (lu *LU) anchorRange(off, n int64) error {
	for pos, end := off, off+n; pos < end; {
		e, err := lu.node.BlockStatus(pos, end-pos)
		if err != nil {
			return err
		}
		if e.Len <= 0 {
			return block.ErrCorrupt
		}
		if e.Status&block.Allocated == 0 {
			if err := block.WriteZeroesFallback(lu.node, pos, e.Len, 0); err != nil {
				return err
			}
		}
		pos += e.Len
	}
	return block.ZeroRange(lu.node, off, n, 0)
}

// writePattern writes the one-block pattern over [off, off+n), in chunks of
// up to 1 MiB (and MaxTransfer).
func (lu *LU) writePattern(pattern []byte, off, n int64) error {
	chunk := min(n, 1<<20, int64(lu.maxXfer<<lu.blockShift))
	buf := getBuf(int(chunk))
	defer putBuf(buf)
	p := (*buf)[:chunk]
	for i := 0; i < len(p); i += len(pattern) {
		copy(p[i:], pattern)
	}
	for n > 0 {
		c := min(n, chunk)
		if err := lu.node.Pwrite(p[:c], off, 0); err != nil {
			return err
		}
		off += c
		n -= c
	}
	return nil
}

// classify maps a merged chain status to a provisioning status: Data is
// mapped, Zero|Allocated anchored, everything else deallocated.
func classify(s block.Status) byte {
	switch {
	case s&block.Data != 0:
		return lbaMapped
	case s&(block.Zero|block.Allocated) == block.Zero|block.Allocated:
		return lbaAnchored
	}
	return lbaDeallocated
}

// stronger returns the status that wins for a block holding both: mapped,
// then anchored, then deallocated.
func stronger(a, b byte) byte {
	rank := func(s byte) int {
		switch s {
		case lbaMapped:
			return 2
		case lbaAnchored:
			return 1
		}
		return 0
	}
	if rank(b) > rank(a) {
		return b
	}
	return a
}

// lbaRun returns the provisioning status of the run of whole blocks that
// starts at lba, and its length in blocks (>= 1). A block whose bytes have
// different states takes the strongest of them.
func (lu *LU) lbaRun(lba uint64) (status byte, blocks uint64, err error) {
	bs := int64(lu.blockSize)
	off := int64(lba << lu.blockShift)
	end := int64(lu.blocks << lu.blockShift)
	e, err := block.ChainStatus(lu.node, off, end-off, nil)
	if err != nil {
		return 0, 0, err
	}
	if e.Len <= 0 {
		return 0, 0, block.ErrCorrupt
	}
	status = classify(e.Status)
	if e.Len >= bs {
		return status, uint64(e.Len) >> lu.blockShift, nil
	}
	// The first block is split: merge the states of all its pieces.
	for pos := off + e.Len; pos < off+bs; {
		e, err = block.ChainStatus(lu.node, pos, off+bs-pos, nil)
		if err != nil {
			return 0, 0, err
		}
		if e.Len <= 0 {
			return 0, 0, block.ErrCorrupt
		}
		status = stronger(status, classify(e.Status))
		pos += e.Len
	}
	return status, 1, nil
}

// getLBAStatus serves GET LBA STATUS(16): descriptors of mapped,
// deallocated and anchored runs from the starting LBA, as many as the
// allocation length holds (at most maxGetLBAStatusDescriptors).
func (lu *LU) getLBAStatus(c *Command) {
	lba := getU64(c.CDB[2:])
	alloc := int(getU32(c.CDB[10:]))
	if lba >= lu.blocks {
		c.fail(SenseLBAOutOfRange)
		return
	}
	want := max(1, min((alloc-8)/16, maxGetLBAStatusDescriptors))
	type desc struct {
		lba, blocks uint64
		status      byte
	}
	descs := make([]desc, 0, min(want, 64))
	for steps := 0; lba < lu.blocks && steps < 64*maxGetLBAStatusDescriptors; steps++ {
		st, n, err := lu.lbaRun(lba)
		if err != nil {
			c.fail(senseFor(opRead, err))
			return
		}
		n = min(n, lu.blocks-lba)
		if k := len(descs); k > 0 && descs[k-1].status == st && descs[k-1].lba+descs[k-1].blocks == lba &&
			descs[k-1].blocks+n <= 0xFFFFFFFF {
			descs[k-1].blocks += n
		} else {
			if len(descs) == want {
				break
			}
			descs = append(descs, desc{lba: lba, blocks: min(n, 0xFFFFFFFF), status: st})
			n = min(n, 0xFFFFFFFF)
		}
		lba += n
	}
	p := c.alloc(8 + 16*len(descs))
	putU32(p, uint32(len(p)-4))
	for i, d := range descs {
		q := p[8+16*i:]
		putU64(q, d.lba)
		putU32(q[8:], uint32(d.blocks))
		q[12] = d.status
	}
	truncate(c, alloc)
}

package scsi

import (
	"bytes"

	"github.com/thinblk/thinblk/block"
)

// Flag bits of CDB byte 1 in the block commands.
const (
	flagFUA       = 0x08
	protectMask   = 0xE0 // RDPROTECT / WRPROTECT / VRPROTECT / ORPROTECT
	flagImmed     = 0x02 // PRE-FETCH, SYNCHRONIZE CACHE
	bytchkShift   = 1
	bytchkMask    = 0x03
	wsFlagNDOB    = 0x01
	wsFlagUnmap   = 0x08
	wsFlagAnchor  = 0x10
	unmapFlagAnch = 0x01
)

// checkRW validates the common fields of a block read or write: no
// protection information, a transfer within MAXIMUM TRANSFER LENGTH, and a
// range inside the capacity. It returns false after failing c.
func (lu *LU) checkRW(c *Command, r lbaRange, limit uint64) bool {
	if c.CDB[0] != opRead6 && c.CDB[0] != opWrite6 && r.flags&protectMask != 0 {
		c.fail(SenseInvalidFieldInCDB)
		return false
	}
	if !lu.inRange(r.lba, r.blocks) {
		c.fail(SenseLBAOutOfRange)
		return false
	}
	if limit > 0 && r.blocks > limit {
		c.fail(SenseInvalidFieldInCDB)
		return false
	}
	return true
}

// dataOut returns the first n bytes of Data-Out, or fails c when fewer
// arrived.
func dataOut(c *Command, n int64) ([]byte, bool) {
	if int64(len(c.DataOut)) < n {
		c.fail(SenseInvalidFieldInIU)
		return nil, false
	}
	return c.DataOut[:n], true
}

// writeFlags maps the FUA bit of a CDB to block flags.
func writeFlags(r lbaRange) block.Flags {
	if r.flags&flagFUA != 0 {
		return block.FUA
	}
	return 0
}

func (lu *LU) read(c *Command) {
	r, _ := decodeLBA(c.CDB)
	if !lu.checkRW(c, r, lu.maxXfer) || r.blocks == 0 {
		return
	}
	off, n := lu.byteRange(r.lba, r.blocks)
	p := c.alloc(int(n))
	if err := lu.node.Pread(p, off); err != nil {
		c.fail(senseFor(opRead, err))
	}
}

// write serves WRITE(6/10/12/16) and WRITE AND VERIFY(10/12/16). A write
// and verify is written with FUA, so the medium holds the data when the
// command completes; comparing it back would read what was just written.
func (lu *LU) write(c *Command) {
	if !lu.writable {
		c.fail(SenseWriteProtected)
		return
	}
	r, _ := decodeLBA(c.CDB)
	if !lu.checkRW(c, r, lu.maxXfer) || r.blocks == 0 {
		return
	}
	// A transport may give less Data-Out than the CDB asks for when the
	// initiator expected to send less (SAM-5 overflow): the whole blocks
	// that arrived are written, and nothing beyond them.
	r.blocks = min(r.blocks, uint64(len(c.DataOut))>>lu.blockShift)
	if r.blocks == 0 {
		return
	}
	off, n := lu.byteRange(r.lba, r.blocks)
	data := c.DataOut[:n]
	flags := writeFlags(r)
	switch c.CDB[0] {
	case opWriteVerify10, opWriteVerify12, opWriteVerify16:
		flags |= block.FUA
	}
	hold := lu.locks.Lock(int64(r.lba), int64(r.lba+r.blocks))
	err := lu.node.Pwrite(data, off, flags)
	lu.locks.Unlock(hold)
	if err != nil {
		c.fail(senseFor(opWrite, err))
	}
}

// verify serves VERIFY(10/12/16): BYTCHK 0 checks the range only, 1
// compares the Data-Out with the medium, 3 compares one Data-Out block with
// every block of the range.
func (lu *LU) verify(c *Command) {
	r, _ := decodeLBA(c.CDB)
	bytchk := (r.flags >> bytchkShift) & bytchkMask
	if bytchk == 2 {
		c.fail(SenseInvalidFieldInCDB)
		return
	}
	if !lu.checkRW(c, r, lu.maxXfer) || r.blocks == 0 || bytchk == 0 {
		return
	}
	off, n := lu.byteRange(r.lba, r.blocks)
	want := int64(lu.blockSize)
	if bytchk == 1 {
		want = n
	}
	data, ok := dataOut(c, want)
	if !ok {
		return
	}
	buf := getBuf(int(n))
	defer putBuf(buf)
	medium := (*buf)[:n]
	if err := lu.node.Pread(medium, off); err != nil {
		c.fail(senseFor(opRead, err))
		return
	}
	for i := int64(0); i < n; i += int64(len(data)) {
		chunk := medium[i : i+int64(len(data))]
		if !bytes.Equal(chunk, data) {
			s := SenseMiscompare
			s.InfoValid, s.Info = true, uint64(i)+uint64(firstDiff(chunk, data))
			if bytchk == 3 {
				s.Info = uint64(i)
			}
			c.fail(s)
			return
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// compareAndWrite serves COMPARE AND WRITE: the first half of the Data-Out
// is compared with the medium and, when equal, the second half is written,
// atomically with respect to every other write of the LU.
func (lu *LU) compareAndWrite(c *Command) {
	if !lu.writable {
		c.fail(SenseWriteProtected)
		return
	}
	r, _ := decodeLBA(c.CDB)
	if r.blocks > maxCompareAndWrite {
		c.fail(SenseInvalidFieldInCDB)
		return
	}
	if !lu.checkRW(c, r, 0) || r.blocks == 0 {
		return
	}
	off, n := lu.byteRange(r.lba, r.blocks)
	if int64(len(c.DataOut)) != 2*n {
		c.fail(SenseInvalidFieldInIU)
		return
	}
	verify, data := c.DataOut[:n], c.DataOut[n:2*n]
	buf := getBuf(int(n))
	defer putBuf(buf)
	medium := (*buf)[:n]
	hold := lu.locks.Lock(int64(r.lba), int64(r.lba+r.blocks))
	defer lu.locks.Unlock(hold)
	if err := lu.node.Pread(medium, off); err != nil {
		c.fail(senseFor(opRead, err))
		return
	}
	if !bytes.Equal(medium, verify) {
		s := SenseMiscompare
		s.InfoValid, s.Info = true, uint64(firstDiff(medium, verify))
		c.fail(s)
		return
	}
	if err := lu.node.Pwrite(data, off, writeFlags(r)); err != nil {
		c.fail(senseFor(opWrite, err))
	}
}

// orWrite serves ORWRITE(16): the Data-Out is ORed into the medium,
// atomically with respect to other writes.
func (lu *LU) orWrite(c *Command) {
	if !lu.writable {
		c.fail(SenseWriteProtected)
		return
	}
	r, _ := decodeLBA(c.CDB)
	if !lu.checkRW(c, r, lu.maxXfer) || r.blocks == 0 {
		return
	}
	off, n := lu.byteRange(r.lba, r.blocks)
	data, ok := dataOut(c, n)
	if !ok {
		return
	}
	buf := getBuf(int(n))
	defer putBuf(buf)
	medium := (*buf)[:n]
	hold := lu.locks.Lock(int64(r.lba), int64(r.lba+r.blocks))
	defer lu.locks.Unlock(hold)
	if err := lu.node.Pread(medium, off); err != nil {
		c.fail(senseFor(opRead, err))
		return
	}
	for i := range medium {
		medium[i] |= data[i]
	}
	if err := lu.node.Pwrite(medium, off, writeFlags(r)); err != nil {
		c.fail(senseFor(opWrite, err))
	}
}

// prefetch serves PRE-FETCH(10/16): the range is checked; there is no cache
// of the LU's own to fill, so it completes with GOOD.
func (lu *LU) prefetch(c *Command) {
	r, _ := decodeLBA(c.CDB)
	if !lu.inRange(r.lba, r.blocks) {
		c.fail(SenseLBAOutOfRange)
	}
}

// syncCache serves SYNCHRONIZE CACHE(10/16) by flushing the whole node (a
// range cannot be flushed on its own); NUMBER OF BLOCKS 0 means "to the
// end".
func (lu *LU) syncCache(c *Command) {
	r, _ := decodeLBA(c.CDB)
	if !lu.inRange(r.lba, r.blocks) {
		c.fail(SenseLBAOutOfRange)
		return
	}
	if err := lu.node.Flush(); err != nil {
		c.fail(senseFor(opWrite, err))
	}
}

// requestSense answers REQUEST SENSE: sense is reported with each CHECK
// CONDITION (autosense), so there is never a pending condition: NO SENSE,
// in fixed or descriptor format as asked.
func (lu *LU) requestSense(c *Command) {
	alloc := int(c.CDB[4])
	if c.CDB[1]&0x01 != 0 { // DESC
		p := c.alloc(8)
		p[0] = 0x72
		truncate(c, alloc)
		return
	}
	p := c.alloc(fixedSenseLen)
	Sense{}.encode(p)
	truncate(c, alloc)
}

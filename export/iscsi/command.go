package iscsi

import (
	"encoding/binary"

	"github.com/thinblk/thinblk/scsi"
)

// scsiCommand starts a SCSI command: it checks CmdSN, collects immediate
// data, and either runs the command or waits for more Data-Out.
func (s *session) scsiCommand(p *pdu) error {
	if s.discovery || s.target == nil {
		s.reject(p, rejectProtocolError)
		return nil
	}
	if !s.checkCmdSN(p) {
		return nil // outside the window: silently ignored
	}
	flags := p.flags()
	t := &task{
		itt:    p.itt(),
		rawLUN: p.lun(),
		edtl:   p.u32(20),
		read:   flags&0x40 != 0,
		write:  flags&0x20 != 0,
	}
	copy(t.cdb[:], p.bhs[32:48])
	lun, ok := scsi.DecodeLUN(t.rawLUN)
	if !ok {
		lun = 1 << 62 // no such LUN
	}
	t.lun = lun
	if !t.write && len(p.data) > 0 {
		s.reject(p, rejectProtocolError)
		return protoErr("data with a SCSI command without the W bit")
	}
	s.mu.Lock()
	s.inflight++
	s.mu.Unlock()
	if !t.write {
		s.execute(t)
		return nil
	}
	imm := len(p.data)
	if !s.params.immediateData && imm > 0 || imm > s.params.firstBurst || int64(imm) > int64(t.edtl) {
		s.freeSlot()
		s.reject(p, rejectProtocolError)
		return protoErr("%d bytes of immediate data (EDTL %d, FirstBurstLength %d)", imm, t.edtl, s.params.firstBurst)
	}
	t.expected = s.target.LUNs.DataOutLen(t.lun, t.cdb[:])
	if !scsi.TakesDataOut(t.cdb[:]) || s.target.LUNs.LU(t.lun) == nil {
		// No Data-Out to collect: the command runs without it, and
		// unsolicited data for it is dropped on arrival.
		t.expected = 0
		s.execute(t)
		return nil
	}
	t.collect = t.expected
	if t.expected != int64(t.edtl) {
		if !scsi.Truncatable(t.cdb[:]) {
			t.mismatch = true
			s.execute(t)
			return nil
		}
		// Only the data both sides agree on is collected and written.
		t.collect = min(t.expected, int64(t.edtl))
	}
	if t.collect == 0 || t.collect > maxCollect {
		// Larger than any transfer the LU accepts: it fails the command
		// on its length before looking at the data.
		s.execute(t)
		return nil
	}
	s.cmu.Lock()
	defer s.cmu.Unlock()
	if _, dup := s.pending[t.itt]; dup {
		s.dropTaskLocked(t)
		s.reject(p, rejectProtocolError)
		return protoErr("ITT 0x%x reused while its command collects data", t.itt)
	}
	// Unsolicited data is the immediate data only (InitialR2T=Yes).
	t.received = int64(imm)
	t.seqEnd = t.received
	imm64 := min(int64(imm), t.collect)
	if s.collecting > 0 && s.collecting+t.collect > collectBudget {
		// Over the session's budget: keep the immediate data and solicit
		// the rest once running commands have freed their buffers.
		t.imm = append([]byte(nil), p.data[:imm64]...)
		s.pending[t.itt] = t
		s.deferred = append(s.deferred, t)
		return nil
	}
	s.startLocked(t, p.data[:imm64])
	return nil
}

// startLocked gives a write task its buffer, with the immediate data, and
// runs it or solicits the rest.
// Preconditions: s.cmu held; t counts in s.inflight.
func (s *session) startLocked(t *task, imm []byte) {
	t.buf = scsi.GetBuffer(int(t.collect))
	copy(*t.buf, imm)
	s.collecting += t.collect
	if t.received >= t.collect {
		delete(s.pending, t.itt)
		s.execute(t)
		return
	}
	s.pending[t.itt] = t
	if t.received == t.seqEnd {
		s.sendR2TLocked(t)
	}
}

// startDeferredLocked starts deferred write tasks, oldest first, while the
// collection budget allows (one task may always run alone).
// Preconditions: s.cmu held.
func (s *session) startDeferredLocked() {
	for len(s.deferred) > 0 {
		t := s.deferred[0]
		if s.collecting > 0 && s.collecting+t.collect > collectBudget {
			return
		}
		s.deferred = s.deferred[1:]
		imm := t.imm
		t.imm = nil
		s.startLocked(t, imm)
	}
}

// releaseBuffer frees a task's Data-Out buffer and its share of the
// collection budget, which may start deferred tasks.
func (s *session) releaseBuffer(t *task) {
	scsi.PutBuffer(t.buf)
	t.buf = nil
	s.cmu.Lock()
	s.collecting -= t.collect
	s.startDeferredLocked()
	s.cmu.Unlock()
}

// sendR2TLocked solicits the next burst of a write task.
// Preconditions: s.cmu held.
func (s *session) sendR2TLocked(t *task) {
	n := min(int64(s.params.maxBurst), t.collect-t.received)
	t.ttt = s.nextTTT
	s.nextTTT++
	if s.nextTTT == reservedTag {
		s.nextTTT = 1
	}
	t.seqEnd = t.received + n
	t.dataSN = 0 // DataSN counts the Data-Out PDUs of each burst from 0
	o := &outPDU{seq: seqPeek}
	o.bhs[0] = opR2T
	o.bhs[1] = 0x80
	binary.BigEndian.PutUint64(o.bhs[8:], t.rawLUN)
	o.put32(16, t.itt)
	o.put32(20, t.ttt)
	o.put32(36, t.r2tSN)
	o.put32(40, uint32(t.received))
	o.put32(44, uint32(n))
	t.r2tSN++
	s.enqueue(o)
}

// dataOut stores one Data-Out PDU. Data for a task that is not collecting
// (a refused or ignored command) is dropped; data out of order or beyond
// the burst it belongs to ends the session (there is no recovery at ERL 0).
func (s *session) dataOut(p *pdu) error {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	t := s.pending[p.itt()]
	if t == nil {
		return nil
	}
	if t.buf == nil {
		return protoErr("Data-Out for ITT 0x%x before its R2T", t.itt)
	}
	ttt, offset := p.u32(20), int64(p.u32(40))
	n := int64(len(p.data))
	switch {
	case offset != t.received:
		return protoErr("Data-Out at offset %d, expected %d", offset, t.received)
	case ttt != reservedTag && ttt != t.ttt:
		return protoErr("Data-Out with unknown TTT 0x%x", ttt)
	case p.u32(36) != t.dataSN:
		return protoErr("Data-Out DataSN %d, expected %d", p.u32(36), t.dataSN)
	case n > t.seqEnd-t.received:
		return protoErr("Data-Out of %d bytes beyond the burst ending at %d", n, t.seqEnd)
	}
	if offset < t.collect {
		copy((*t.buf)[offset:t.collect], p.data)
	}
	t.dataSN++
	t.received += n
	if t.received >= t.collect {
		delete(s.pending, t.itt)
		s.execute(t)
		return nil
	}
	if t.received == t.seqEnd {
		s.sendR2TLocked(t)
	}
	return nil
}

// execute runs a task in its own goroutine; the response is queued when it
// completes.
func (s *session) execute(t *task) {
	s.mu.Lock()
	s.running[t.itt] = t
	s.mu.Unlock()
	s.executing.Add(1)
	go func() {
		defer s.executing.Done()
		s.run(t)
	}()
}

// run executes the command and queues Data-In and the status.
func (s *session) run(t *task) {
	c := &scsi.Command{CDB: t.cdb[:], Initiator: s.nexus}
	luns := s.target.LUNs
	switch {
	case t.mismatch:
		c.Fail(scsi.DataOutMismatch(t.cdb[:]))
	case t.buf != nil:
		c.DataOut = (*t.buf)[:t.collect]
		luns.Execute(t.lun, c)
	default:
		luns.Execute(t.lun, c)
	}
	if t.buf != nil {
		s.releaseBuffer(t)
	}
	s.respond(t, c)
}

// respond queues Data-In PDUs (at most MaxRecvDataSegmentLength each, a
// sequence ending every MaxBurstLength) and the status: collapsed into the
// last Data-In when GOOD, else a SCSI Response with the sense data.
func (s *session) respond(t *task, c *scsi.Command) {
	// Residuals against the initiator's expected length.
	var spdtl int64
	switch {
	case t.write:
		spdtl = t.expected
	case t.read:
		spdtl = int64(len(c.DataIn))
	default:
		spdtl = int64(len(c.DataIn))
	}
	var sendLen int64
	if t.read {
		sendLen = min(int64(len(c.DataIn)), int64(t.edtl))
	}
	var resFlags byte
	var residual uint32
	switch edtl := int64(t.edtl); {
	case spdtl > edtl:
		resFlags, residual = 0x04, uint32(min(spdtl-edtl, 0xFFFFFFFF)) // overflow
	case spdtl < edtl:
		resFlags, residual = 0x02, uint32(edtl-spdtl) // underflow
	}
	collapse := c.Status == scsi.StatusGood && sendLen > 0
	maxSeg := int64(s.params.maxSendData)
	maxBurst := int64(s.params.maxBurst)
	var dataSN uint32
	for off := int64(0); off < sendLen; {
		n := min(maxSeg, sendLen-off)
		// Do not let a PDU cross a burst boundary.
		if burstEnd := (off/maxBurst + 1) * maxBurst; off+n > burstEnd {
			n = burstEnd - off
		}
		last := off+n == sendLen
		o := &outPDU{seq: seqCmdOnly}
		o.bhs[0] = opDataIn
		if last || (off+n)%maxBurst == 0 {
			o.bhs[1] |= 0x80 // F
		}
		binary.BigEndian.PutUint64(o.bhs[8:], t.rawLUN)
		o.put32(16, t.itt)
		o.put32(20, reservedTag)
		o.put32(36, dataSN)
		o.put32(40, uint32(off))
		o.data = c.DataIn[off : off+n]
		if last {
			if collapse {
				o.bhs[1] |= 0x01 | resFlags // S, O/U
				o.bhs[3] = c.Status
				o.put32(44, residual)
				o.seq = seqStatus
				s.freeSlot()
			}
			o.release = c.Release
		}
		s.enqueue(o)
		if last && collapse {
			s.finish(t)
		}
		dataSN++
		off += n
	}
	if collapse {
		return
	}
	if sendLen == 0 {
		c.Release()
	}
	o := &outPDU{seq: seqStatus}
	o.bhs[0] = opSCSIResp
	o.bhs[1] = 0x80 | resFlags
	o.bhs[3] = c.Status
	o.put32(16, t.itt)
	o.put32(36, dataSN+t.r2tSN) // ExpDataSN
	o.put32(44, residual)
	if len(c.Sense) > 0 {
		o.data = make([]byte, 2+len(c.Sense))
		binary.BigEndian.PutUint16(o.data, uint16(len(c.Sense)))
		copy(o.data[2:], c.Sense)
	}
	s.freeSlot()
	s.enqueue(o)
	s.finish(t)
}

// freeSlot frees the task's place in the CmdSN window before its status is
// queued, so that the MaxCmdSN in that status already counts it.
func (s *session) freeSlot() {
	s.mu.Lock()
	s.inflight--
	s.mu.Unlock()
}

// finish marks a task complete after its status is queued, so that a task
// management response waiting for it is queued behind that status.
func (s *session) finish(t *task) {
	s.mu.Lock()
	delete(s.running, t.itt)
	s.taskDone.Broadcast()
	s.mu.Unlock()
}

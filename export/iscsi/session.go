package iscsi

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"time"

	"github.com/thinblk/thinblk/scsi"
)

// cmdWindow is how many commands a session may have outstanding: the
// CmdSN window the target advertises.
const cmdWindow = 64

// maxCollect bounds the Data-Out one command may collect in memory; larger
// transfers are refused by the SCSI layer's MAXIMUM TRANSFER LENGTH anyway.
const maxCollect = 32 << 20

// collectBudget bounds the Data-Out buffers of one session: a write that
// would exceed it waits for its R2T until running commands free theirs.
// With immediate data bounded by FirstBurstLength, a session holds at most
// collectBudget + cmdWindow*FirstBurstLength bytes of write data.
const collectBudget = 64 << 20

// session is one connection, which is one session at ERL 0.
type session struct {
	srv *Server
	nc  net.Conn
	log *slog.Logger
	pr  pduReader
	bw  *bufio.Writer

	// Set during login, read-only afterwards.
	isid          [6]byte
	tsih          uint16
	cid           uint16
	initiatorName string
	nexus         string // initiator port name: "iqn...,i,0xISID"
	discovery     bool
	target        *Target
	params        params
	declaredMRDSL bool

	// statSN is the next StatSN; owned by login, then by the writer.
	statSN uint32

	mu        sync.Mutex // guards expCmdSN, maxCmdSN, inflight, running
	expCmdSN  uint32
	maxCmdSN  uint32 // highest MaxCmdSN advertised
	inflight  int
	running   map[uint32]*task
	taskDone  *sync.Cond // signalled when a running task ends
	executing sync.WaitGroup

	out  chan *outPDU
	quit chan struct{} // closed when the writer must stop

	cmu        sync.Mutex       // guards the Data-Out collection state below and in tasks
	pending    map[uint32]*task // write tasks collecting Data-Out, by ITT
	deferred   []*task          // pending tasks waiting for collection budget, oldest first
	collecting int64            // bytes of Data-Out buffers held by tasks
	nextTTT    uint32

	text textState // reader-owned
}

// task is one SCSI command.
type task struct {
	itt      uint32
	rawLUN   uint64
	lun      uint64
	cdb      [16]byte
	edtl     uint32
	read     bool
	write    bool
	imm      []byte // immediate data of a deferred task
	expected int64  // Data-Out length the CDB asks for
	collect  int64  // Data-Out bytes kept: min(expected, EDTL)
	mismatch bool   // EDTL differs from expected and the command cannot be truncated
	buf      *[]byte
	received int64
	seqEnd   int64 // end of the current unsolicited burst or R2T
	ttt      uint32
	r2tSN    uint32
	dataSN   uint32 // next DataSN expected in the current burst
}

func newSession(srv *Server, nc net.Conn) *session {
	s := &session{
		srv:     srv,
		nc:      nc,
		log:     srv.logger().With("remote", nc.RemoteAddr().String()),
		bw:      bufio.NewWriterSize(nc, 64<<10),
		params:  defaultParams(),
		running: map[uint32]*task{},
		pending: map[uint32]*task{},
		out:     make(chan *outPDU, 256),
		quit:    make(chan struct{}),
		nextTTT: 1,
	}
	s.pr.r = bufio.NewReaderSize(nc, 64<<10)
	s.taskDone = sync.NewCond(&s.mu)
	return s
}

// serve runs the session to its end and closes the connection.
func (s *session) serve() {
	defer s.nc.Close()
	s.nc.SetDeadline(time.Now().Add(loginTimeout))
	if err := s.login(); err != nil {
		s.log.Info("iscsi login failed", "err", err)
		return
	}
	s.nc.SetDeadline(time.Time{})
	s.nexus = fmt.Sprintf("%s,i,0x%x", s.initiatorName, s.isid[:])
	target := ""
	if s.target != nil {
		target = s.target.Name
	}
	s.log = s.log.With("initiator", s.initiatorName, "target", target, "tsih", s.tsih)
	s.log.Info("iscsi session started", "discovery", s.discovery,
		"header_digest", s.params.headerDigest, "data_digest", s.params.dataDigest)
	s.maxCmdSN = s.expCmdSN + cmdWindow - 1
	writerDone := make(chan struct{})
	go func() {
		s.writer()
		close(writerDone)
	}()
	err := s.readLoop()
	// Let running commands finish and queue their responses, then stop
	// the writer once it has sent them.
	s.executing.Wait()
	s.cmu.Lock()
	s.deferred = nil
	for _, t := range s.pending {
		s.dropTaskLocked(t)
	}
	s.cmu.Unlock()
	s.enqueue(&outPDU{after: func() {}}) // a marker: everything before it is written
	close(s.quit)
	<-writerDone
	if s.target != nil {
		s.forEachLU(func(lu *scsi.LU) { lu.NexusLost(s.nexus) })
	}
	switch {
	case errors.Is(err, errLogout):
		s.log.Info("iscsi session logged out")
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		s.log.Info("iscsi session closed")
	default:
		s.log.Info("iscsi session ended", "err", err)
	}
}

// loginTimeout bounds the whole login phase.
const loginTimeout = 30 * time.Second

// enqueue hands a PDU to the writer; it drops it (releasing its buffer)
// when the writer has stopped.
func (s *session) enqueue(o *outPDU) {
	select {
	case s.out <- o:
	case <-s.quit:
		if o.release != nil {
			o.release()
		}
	}
}

// writer sends queued PDUs, filling sequence numbers, and flushes when the
// queue runs empty. After a write error it closes the connection and keeps
// draining the queue until quit.
func (s *session) writer() {
	var failed bool
	var afters []func()
	handle := func(o *outPDU) {
		if o.bhs[0] != 0 || o.data != nil { // not an empty marker
			s.fillSeq(o)
			if !failed {
				if err := writePDU(s.bw, o, s.params.headerDigest, s.params.dataDigest); err != nil {
					failed = true
					s.nc.Close()
				}
			}
		}
		if o.release != nil {
			o.release()
		}
		if o.after != nil {
			afters = append(afters, o.after)
		}
	}
	flush := func() {
		if !failed {
			if err := s.bw.Flush(); err != nil {
				failed = true
				s.nc.Close()
			}
		}
		for _, f := range afters {
			f()
		}
		afters = afters[:0]
	}
	for {
		select {
		case o := <-s.out:
			handle(o)
			// Drain what is queued; when the queue runs dry, yield once
			// so that commands completing right now join this write.
			for yielded := false; ; {
				select {
				case o := <-s.out:
					handle(o)
					continue
				default:
				}
				if yielded {
					break
				}
				runtime.Gosched()
				yielded = true
			}
			flush()
		case <-s.quit:
			for {
				select {
				case o := <-s.out:
					handle(o)
				default:
					flush()
					return
				}
			}
		}
	}
}

// fillSeq sets StatSN, ExpCmdSN and MaxCmdSN of an outgoing PDU.
// MaxCmdSN never decreases; it opens as commands complete.
func (s *session) fillSeq(o *outPDU) {
	switch o.seq {
	case seqStatus:
		o.put32(24, s.statSN)
		s.statSN++
	case seqPeek:
		o.put32(24, s.statSN)
	case seqNone:
		return
	}
	s.mu.Lock()
	max := s.expCmdSN + cmdWindow - 1 - uint32(s.inflight)
	if serialLT(s.maxCmdSN, max) {
		s.maxCmdSN = max
	}
	o.put32(28, s.expCmdSN)
	o.put32(32, s.maxCmdSN)
	s.mu.Unlock()
}

// protocolError is an initiator error that ends the session.
type protocolError struct{ msg string }

func (e *protocolError) Error() string { return "iscsi protocol error: " + e.msg }

func protoErr(format string, args ...any) error {
	return &protocolError{msg: fmt.Sprintf(format, args...)}
}

// readLoop reads and dispatches PDUs until the connection ends, a logout
// completes, or the initiator breaks the protocol.
func (s *session) readLoop() error {
	var p pdu
	buf := make([]byte, 0, 8192)
	for {
		if err := s.pr.read(&p, buf[:0]); err != nil {
			switch {
			case errors.Is(err, errDigest):
				s.reject(&p, rejectDigestError)
			case errors.Is(err, errTooLong):
				s.reject(&p, rejectProtocolError)
			}
			return err
		}
		if cap(p.data) > cap(buf) && cap(p.data) <= ourMaxRecvData+4 {
			buf = p.data[:0]
		}
		var err error
		switch p.opcode() {
		case opSCSICmd:
			err = s.scsiCommand(&p)
		case opDataOut:
			err = s.dataOut(&p)
		case opNopOut:
			err = s.nopOut(&p)
		case opTMFReq:
			err = s.taskManagement(&p)
		case opTextReq:
			err = s.textRequest(&p)
		case opLogoutReq:
			return s.logout(&p)
		case opLoginReq:
			s.reject(&p, rejectProtocolError)
			return protoErr("login request in full feature phase")
		case opSNACK:
			s.reject(&p, rejectSNACK)
		default:
			s.reject(&p, rejectNotSupported)
		}
		if err != nil {
			return err
		}
	}
}

// reject sends a Reject PDU carrying the offending header.
func (s *session) reject(p *pdu, reason byte) {
	o := &outPDU{seq: seqPeek}
	o.bhs[0] = opReject
	o.bhs[1] = 0x80
	o.bhs[2] = reason
	o.put32(16, reservedTag)
	o.data = append([]byte(nil), p.bhs[:]...)
	s.enqueue(o)
}

// checkCmdSN applies the CmdSN rules to a non-immediate request: the one
// with CmdSN == ExpCmdSN inside the window is accepted and advances
// ExpCmdSN; any other is to be silently ignored (RFC 7143 4.2.2.1).
func (s *session) checkCmdSN(p *pdu) bool {
	if p.immediate() {
		return true
	}
	cmdSN := p.u32(24)
	s.mu.Lock()
	defer s.mu.Unlock()
	if cmdSN != s.expCmdSN || serialLT(s.maxCmdSN, cmdSN) {
		return false
	}
	s.expCmdSN++
	return true
}

// nopOut answers a NOP-Out ping with a NOP-In echoing its data.
func (s *session) nopOut(p *pdu) error {
	if !s.checkCmdSN(p) {
		return nil
	}
	if p.itt() == reservedTag {
		return nil // the answer to a NOP-In of ours (we send none)
	}
	o := &outPDU{seq: seqStatus}
	o.bhs[0] = opNopIn
	o.bhs[1] = 0x80
	copy(o.bhs[8:16], p.bhs[8:16])
	o.put32(16, p.itt())
	o.put32(20, reservedTag)
	if len(p.data) > 0 {
		o.data = append([]byte(nil), p.data...)
	}
	s.enqueue(o)
	return nil
}

// logout waits for running commands, answers, and ends the session once
// the answer is written.
func (s *session) logout(p *pdu) error {
	s.checkCmdSN(p)
	s.executing.Wait()
	reason := p.flags() & 0x7F
	o := &outPDU{seq: seqStatus}
	o.bhs[0] = opLogoutResp
	o.bhs[1] = 0x80
	if reason == 2 { // remove connection for recovery: not at ERL 0
		o.bhs[2] = 2
	}
	o.put32(16, p.itt())
	done := make(chan struct{})
	o.after = func() { close(done) }
	s.enqueue(o)
	select {
	case <-done:
	case <-s.quit:
	}
	return errLogout
}

// taskManagement serves ABORT TASK, ABORT TASK SET, CLEAR TASK SET, LUN
// RESET and the target resets. Aborted tasks that still collect Data-Out
// are dropped without a response; running ones are waited for (a command
// in the backend cannot be stopped), so their responses precede ours.
func (s *session) taskManagement(p *pdu) error {
	if !s.checkCmdSN(p) {
		return nil
	}
	function := p.flags() & 0x7F
	response := byte(0) // function complete
	lun, lunOK := scsi.DecodeLUN(p.lun())
	switch function {
	case 1: // ABORT TASK
		rtt := p.u32(20)
		s.cmu.Lock()
		t := s.pending[rtt]
		if t != nil {
			s.dropTaskLocked(t)
		}
		s.cmu.Unlock()
		if t == nil {
			// Running (it completes: its status goes first) or done:
			// either way the task no longer exists when we answer.
			// A RefCmdSN not received yet counts as aborted (RFC 7143
			// 11.5.1 b).
			s.waitTasks(func(t *task) bool { return t.itt == rtt })
			s.mu.Lock()
			received := serialLT(p.u32(32), s.expCmdSN)
			s.mu.Unlock()
			if received {
				response = 1 // task does not exist
			}
		}
	case 2, 4, 5: // ABORT TASK SET, CLEAR TASK SET, LUN RESET
		if s.target == nil || !lunOK || s.target.LUNs.LU(lun) == nil {
			response = 2 // LUN does not exist
			break
		}
		s.dropTasks(func(t *task) bool { return t.lun == lun })
		s.waitTasks(func(t *task) bool { return t.lun == lun })
		if function == 5 {
			s.target.LUNs.LU(lun).Reset()
		}
	case 6, 7: // TARGET WARM RESET, TARGET COLD RESET
		s.dropTasks(func(*task) bool { return true })
		s.waitTasks(func(*task) bool { return true })
		if s.target != nil {
			s.forEachLU(func(lu *scsi.LU) { lu.Reset() })
		}
	case 3: // CLEAR ACA: no ACA is ever established
		response = 5
	case 8: // TASK REASSIGN: not at ERL 0
		response = 4
	default:
		response = 255
	}
	o := &outPDU{seq: seqStatus}
	o.bhs[0] = opTMFResp
	o.bhs[1] = 0x80
	o.bhs[2] = response
	o.put32(16, p.itt())
	s.enqueue(o)
	if function == 7 {
		return errors.New("iscsi: target cold reset")
	}
	return nil
}

// waitTasks waits until no running task matches.
func (s *session) waitTasks(match func(*task) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		busy := false
		for _, t := range s.running {
			if match(t) {
				busy = true
				break
			}
		}
		if !busy {
			return
		}
		s.taskDone.Wait()
	}
}

// dropTasks forgets the tasks collecting Data-Out that match.
func (s *session) dropTasks(match func(*task) bool) {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	for _, t := range s.pending {
		if match(t) {
			s.dropTaskLocked(t)
		}
	}
}

// dropTaskLocked forgets a task collecting Data-Out (or deferred); it gets
// no response. Its buffer and budget are freed, which may start deferred
// tasks.
// Preconditions: s.cmu held.
func (s *session) dropTaskLocked(t *task) {
	if s.pending[t.itt] == t {
		delete(s.pending, t.itt)
	}
	for i, d := range s.deferred {
		if d == t {
			s.deferred = append(s.deferred[:i], s.deferred[i+1:]...)
			break
		}
	}
	t.imm = nil
	if t.buf != nil {
		scsi.PutBuffer(t.buf)
		t.buf = nil
		s.collecting -= t.collect
	}
	s.mu.Lock()
	s.inflight--
	s.mu.Unlock()
	s.startDeferredLocked()
}

// forEachLU calls fn for every LU of the session's target.
func (s *session) forEachLU(fn func(*scsi.LU)) {
	for _, n := range s.target.LUNs.LUNs() {
		if lu := s.target.LUNs.LU(n); lu != nil {
			fn(lu)
		}
	}
}

package iscsi

import (
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/protocol/mem"
	"github.com/thinblk/thinblk/scsi"
)

const testIQN = "iqn.2026-01.io.thinblk:test"

type testServer struct {
	addr string
	srv  *Server
	node *mem.Node
}

// startServer serves one target with one mem LUN (LUN 0) of size bytes.
func startServer(t testing.TB, size int64, chap *CHAP) *testServer {
	t.Helper()
	node := mem.New(size)
	lu, err := scsi.New(node, scsi.Config{Discard: block.DiscardUnmap, LBPRZ: true, Serial: "test"})
	if err != nil {
		t.Fatal(err)
	}
	luns := scsi.NewTarget()
	luns.Add(0, lu)
	srv := &Server{
		Targets: []*Target{{Name: testIQN, LUNs: luns}},
		CHAP:    chap,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != ErrServerClosed {
			t.Errorf("Serve returned %v", err)
		}
	})
	return &testServer{addr: l.Addr().String(), srv: srv, node: node}
}

func read16(lba uint64, n uint32) []byte {
	c := make([]byte, 16)
	c[0] = 0x88
	binary.BigEndian.PutUint64(c[2:], lba)
	binary.BigEndian.PutUint32(c[10:], n)
	return c
}

func write16(lba uint64, n uint32) []byte {
	c := read16(lba, n)
	c[0] = 0x8A
	return c
}

func mustLogin(t testing.TB, ts *testServer, digest string) *initiator {
	t.Helper()
	in := dialInitiator(t, ts.addr)
	if st := in.login(testIQN, nil, digest); st != 0 {
		t.Fatalf("login status %#04x", st)
	}
	return in
}

func TestLoginWriteRead(t *testing.T) {
	for _, digest := range []string{"None", "CRC32C"} {
		t.Run(digest, func(t *testing.T) {
			ts := startServer(t, 8<<20, nil)
			in := mustLogin(t, ts, digest)
			if digest == "CRC32C" && !(in.hd && in.dd) {
				t.Fatal("CRC32C digests not negotiated")
			}
			// 1 MiB: immediate data, then R2T-solicited bursts.
			data := make([]byte, 1<<20)
			for i := range data {
				data[i] = byte(i * 7)
			}
			res, err := in.command(0, write16(16, 2048), data, len(data), false)
			if err != nil || res.status != 0 {
				t.Fatalf("write: %v status %#x sense % x", err, res.status, res.sense)
			}
			got := make([]byte, len(data))
			ts.node.Pread(got, 16*512)
			if !bytes.Equal(got, data) {
				t.Fatal("the node does not hold what was written")
			}
			res, err = in.command(0, read16(16, 2048), nil, len(data), true)
			if err != nil || res.status != 0 || !bytes.Equal(res.data, data) {
				t.Fatalf("read back: %v status %#x, %d bytes", err, res.status, len(res.data))
			}
			// Read residuals: INQUIRY asks for 255, gets 66.
			res, err = in.command(0, []byte{0x12, 0, 0, 0, 255, 0}, nil, 255, true)
			if err != nil || res.status != 0 || len(res.data) != 66 || res.resFlags != 0x02 || res.residual != 255-66 {
				t.Fatalf("INQUIRY: %v status %#x %d bytes flags %#x residual %d", err, res.status, len(res.data), res.resFlags, res.residual)
			}
			// A CHECK CONDITION carries sense.
			res, err = in.command(0, read16(1<<40, 1), nil, 512, true)
			if err != nil || res.status != 2 || len(res.sense) < 14 || res.sense[12] != 0x21 {
				t.Fatalf("read beyond the end: %v status %#x sense % x", err, res.status, res.sense)
			}
			// EDTL below the CDB's length: only EDTL bytes are written.
			res, err = in.command(0, write16(0, 2), bytes.Repeat([]byte{9}, 512), 512, false)
			if err != nil || res.status != 0 || res.resFlags != 0x04 || res.residual != 512 {
				t.Fatalf("overflowing write: %v status %#x flags %#x residual %d", err, res.status, res.resFlags, res.residual)
			}
			if err := in.logout(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestCHAP(t *testing.T) {
	creds := &CHAP{User: "alice", Secret: "secret-one-12", MutualUser: "target", MutualSecret: "secret-two-34"}
	ts := startServer(t, 1<<20, creds)
	if st := dialInitiator(t, ts.addr).login(testIQN, []string{"alice", "secret-one-12", "secret-two-34"}, ""); st != 0 {
		t.Fatalf("mutual CHAP login: status %#04x", st)
	}
	if st := dialInitiator(t, ts.addr).login(testIQN, []string{"alice", "wrong"}, ""); st != loginAuthFailed {
		t.Fatalf("wrong secret: status %#04x", st)
	}
	if st := dialInitiator(t, ts.addr).login(testIQN, []string{"alice", "secret-one-12"}, ""); st != loginAuthFailed {
		t.Fatalf("mutual CHAP configured but not asked: status %#04x", st)
	}
	if st := dialInitiator(t, ts.addr).login(testIQN, nil, ""); st != loginAuthFailed {
		t.Fatalf("no authentication: status %#04x", st)
	}
	oneWay := startServer(t, 1<<20, &CHAP{User: "bob", Secret: "bobsecret123"})
	in := dialInitiator(t, oneWay.addr)
	if st := in.login(testIQN, []string{"bob", "bobsecret123"}, ""); st != 0 {
		t.Fatalf("one-way CHAP: status %#04x", st)
	}
	if res, err := in.command(0, []byte{0, 0, 0, 0, 0, 0}, nil, 0, false); err != nil || res.status != 0 {
		t.Fatalf("TEST UNIT READY after CHAP: %v", err)
	}
}

func TestDiscoveryAndUnknownTarget(t *testing.T) {
	ts := startServer(t, 1<<20, nil)
	in := dialInitiator(t, ts.addr)
	if st := in.login("", nil, ""); st != 0 {
		t.Fatalf("discovery login: %#04x", st)
	}
	var b [bhsLen]byte
	b[0] = opTextReq | flagImmediate
	b[1] = 0x80
	binary.BigEndian.PutUint32(b[16:], 77)
	binary.BigEndian.PutUint32(b[20:], reservedTag)
	binary.BigEndian.PutUint32(b[24:], in.cmdSN)
	if err := in.send(b, encodeText(nil, []kv{{"SendTargets", "All"}})); err != nil {
		t.Fatal(err)
	}
	p, err := in.recv()
	if err != nil || p.opcode() != opTextResp {
		t.Fatalf("SendTargets: %v", err)
	}
	text := string(p.data)
	if !strings.Contains(text, "TargetName="+testIQN+"\x00") || !strings.Contains(text, "TargetAddress="+ts.addr+",1\x00") {
		t.Fatalf("SendTargets answered %q", text)
	}
	// A SCSI command in a discovery session is rejected.
	b = [bhsLen]byte{}
	b[0] = opSCSICmd
	b[1] = 0x80
	binary.BigEndian.PutUint32(b[24:], in.cmdSN)
	in.send(b, nil)
	if p, err := in.recv(); err != nil || p.opcode() != opReject {
		t.Fatalf("SCSI command in discovery: %v opcode %#x", err, p.opcode())
	}
	if st := dialInitiator(t, ts.addr).login("iqn.2026-01.nobody:none", nil, ""); st != loginNotFound {
		t.Fatalf("unknown target: status %#04x", st)
	}
}

// TestBadInitiators sends broken PDU streams while a good session keeps
// doing I/O: each bad session is rejected or dropped, the good one never
// notices, and the server never panics.
func TestBadInitiators(t *testing.T) {
	ts := startServer(t, 4<<20, nil)
	good := mustLogin(t, ts, "")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var goodErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := bytes.Repeat([]byte{0x42}, 4096)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			res, err := good.command(0, write16(uint64(i%100)*8, 8), buf, len(buf), false)
			if err == nil && res.status != 0 {
				err = io.ErrUnexpectedEOF
			}
			if err == nil {
				res, err = good.command(0, read16(uint64(i%100)*8, 8), nil, 4096, true)
				if err == nil && !bytes.Equal(res.data, buf) {
					err = io.ErrShortBuffer
				}
			}
			if err != nil {
				goodErr = err
				return
			}
		}
	}()

	expectClosed := func(t *testing.T, in *initiator) {
		t.Helper()
		in.nc.SetDeadline(time.Now().Add(5 * time.Second))
		for {
			p, err := in.recv()
			if err != nil {
				return // closed (or reset): good
			}
			if p.opcode() != opReject && p.opcode() != opLoginResp {
				t.Fatalf("got opcode %#x from a broken session", p.opcode())
			}
		}
	}
	t.Run("garbage", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		for i := 0; i < 20; i++ {
			in := dialInitiator(t, ts.addr)
			junk := make([]byte, 48+rng.IntN(2000))
			for j := range junk {
				junk[j] = byte(rng.Uint32())
			}
			in.nc.Write(junk)
			in.nc.(*net.TCPConn).CloseWrite()
			expectClosed(t, in)
		}
	})
	t.Run("command before login", func(t *testing.T) {
		in := dialInitiator(t, ts.addr)
		var b [bhsLen]byte
		b[0] = opSCSICmd
		b[1] = 0xC0
		copy(b[32:], read16(0, 1))
		in.send(b, nil)
		p, err := in.recv()
		if err != nil || p.opcode() != opLoginResp || loginStatus(p) != loginInvalidDuringLog {
			t.Fatalf("got %v / %+v", err, p)
		}
		expectClosed(t, in)
	})
	t.Run("oversized data segment", func(t *testing.T) {
		in := mustLogin(t, ts, "")
		var b [bhsLen]byte
		b[0] = opSCSICmd
		b[1] = 0xA0
		n := ourMaxRecvData + 4096
		b[5], b[6], b[7] = byte(n>>16), byte(n>>8), byte(n)
		binary.BigEndian.PutUint32(b[20:], uint32(n))
		binary.BigEndian.PutUint32(b[24:], in.cmdSN)
		copy(b[32:], write16(0, uint32(n/512)))
		in.bw.Write(b[:])
		in.bw.Flush()
		expectClosed(t, in)
	})
	t.Run("oversized login text", func(t *testing.T) {
		in := dialInitiator(t, ts.addr)
		var b [bhsLen]byte
		b[0] = opLoginReq | flagImmediate
		b[1] = 0x87
		b[5] = 0xFF // 16 MiB data segment, never sent
		in.bw.Write(b[:])
		in.bw.Flush()
		expectClosed(t, in)
	})
	t.Run("out of window CmdSN", func(t *testing.T) {
		in := mustLogin(t, ts, "")
		in.cmdSN += 1000
		in.nc.SetDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := in.command(0, []byte{0, 0, 0, 0, 0, 0}, nil, 0, false); err == nil {
			t.Fatal("a command outside the CmdSN window was answered")
		}
		in.nc.SetDeadline(time.Now().Add(5 * time.Second))
		in.cmdSN -= 1001
		if res, err := in.command(0, []byte{0, 0, 0, 0, 0, 0}, nil, 0, false); err != nil || res.status != 0 {
			t.Fatalf("the next in-window command: %v", err)
		}
	})
	t.Run("bad header digest", func(t *testing.T) {
		in := mustLogin(t, ts, "CRC32C")
		var b [bhsLen]byte
		b[0] = opNopOut | flagImmediate
		b[1] = 0x80
		binary.BigEndian.PutUint32(b[16:], 3)
		in.bw.Write(b[:])
		in.bw.Write([]byte{1, 2, 3, 4}) // not the CRC32C of the header
		in.bw.Flush()
		expectClosed(t, in)
	})
	t.Run("unknown opcode and stray Data-Out", func(t *testing.T) {
		in := mustLogin(t, ts, "")
		var b [bhsLen]byte
		b[0] = 0x1C
		b[1] = 0x80
		in.send(b, nil)
		if p, err := in.recv(); err != nil || p.opcode() != opReject || p.bhs[2] != rejectNotSupported {
			t.Fatalf("unknown opcode: %v", err)
		}
		b = [bhsLen]byte{}
		b[0] = opDataOut
		b[1] = 0x80
		binary.BigEndian.PutUint32(b[16:], 0xABCDEF)
		in.send(b, make([]byte, 512))
		if res, err := in.command(0, []byte{0, 0, 0, 0, 0, 0}, nil, 0, false); err != nil || res.status != 0 {
			t.Fatalf("after a stray Data-Out: %v", err)
		}
	})
	t.Run("Data-Out out of order", func(t *testing.T) {
		in := mustLogin(t, ts, "")
		var b [bhsLen]byte
		b[0] = opSCSICmd
		b[1] = 0xA0
		binary.BigEndian.PutUint32(b[16:], 5)
		binary.BigEndian.PutUint32(b[20:], 1<<20)
		binary.BigEndian.PutUint32(b[24:], in.cmdSN)
		copy(b[32:], write16(0, 2048))
		in.send(b, nil)
		p, err := in.recv()
		if err != nil || p.opcode() != opR2T {
			t.Fatalf("expected an R2T: %v", err)
		}
		var d [bhsLen]byte
		d[0] = opDataOut
		d[1] = 0x80
		binary.BigEndian.PutUint32(d[16:], 5)
		copy(d[20:24], p.bhs[20:24])
		binary.BigEndian.PutUint32(d[40:], 4096) // not where the burst starts
		in.send(d, make([]byte, 512))
		expectClosed(t, in)
	})
	close(stop)
	wg.Wait()
	if goodErr != nil {
		t.Fatalf("the good session failed: %v", goodErr)
	}
}

func TestManySessions(t *testing.T) {
	ts := startServer(t, 16<<20, nil)
	const sessions = 16
	var wg sync.WaitGroup
	errs := make(chan error, sessions)
	for s := 0; s < sessions; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := dialInitiator(t, ts.addr)
			if st := in.login(testIQN, nil, ""); st != 0 {
				errs <- io.ErrUnexpectedEOF
				return
			}
			buf := bytes.Repeat([]byte{byte(s + 1)}, 64<<10)
			lba := uint64(s) * 2048
			for i := 0; i < 20; i++ {
				res, err := in.command(0, write16(lba, 128), buf, len(buf), false)
				if err != nil || res.status != 0 {
					errs <- err
					return
				}
				res, err = in.command(0, read16(lba, 128), nil, len(buf), true)
				if err != nil || !bytes.Equal(res.data, buf) {
					errs <- io.ErrShortBuffer
					return
				}
			}
			errs <- in.logout()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestTaskManagement(t *testing.T) {
	ts := startServer(t, 1<<20, nil)
	in := mustLogin(t, ts, "")
	// A write that waits for its R2T is aborted: no response for it.
	var b [bhsLen]byte
	b[0] = opSCSICmd
	b[1] = 0xA0
	binary.BigEndian.PutUint32(b[16:], 900)
	binary.BigEndian.PutUint32(b[20:], 1<<19)
	binary.BigEndian.PutUint32(b[24:], in.cmdSN)
	in.cmdSN++
	copy(b[32:], write16(0, 1024))
	in.send(b, nil)
	if p, err := in.recv(); err != nil || p.opcode() != opR2T {
		t.Fatalf("no R2T: %v", err)
	}
	tmf := func(function byte, rtt uint32) byte {
		var m [bhsLen]byte
		m[0] = opTMFReq | flagImmediate
		m[1] = 0x80 | function
		binary.BigEndian.PutUint32(m[16:], 901)
		binary.BigEndian.PutUint32(m[20:], rtt)
		binary.BigEndian.PutUint32(m[24:], in.cmdSN)
		in.send(m, nil)
		p, err := in.recv()
		if err != nil || p.opcode() != opTMFResp {
			t.Fatalf("TMF %d: %v", function, err)
		}
		return p.bhs[2]
	}
	if r := tmf(1, 900); r != 0 {
		t.Fatalf("ABORT TASK response %d", r)
	}
	if r := tmf(5, 0); r != 0 {
		t.Fatalf("LUN RESET response %d", r)
	}
	// The next command's response is the next PDU: nothing for task 900.
	if res, err := in.command(0, []byte{0, 0, 0, 0, 0, 0}, nil, 0, false); err != nil || res.status != 0 {
		t.Fatalf("after abort: %v", err)
	}
	// Aborting a task that already completed: "task does not exist".
	if r := tmf(1, in.itt); r != 1 {
		t.Fatalf("ABORT TASK of a completed task: response %d", r)
	}
}

func TestServerValidate(t *testing.T) {
	lu, _ := scsi.New(mem.New(1<<20), scsi.Config{})
	luns := scsi.NewTarget()
	luns.Add(0, lu)
	for _, s := range []*Server{
		{},
		{Targets: []*Target{{Name: "disk", LUNs: luns}}},
		{Targets: []*Target{{Name: testIQN, LUNs: luns}, {Name: strings.ToUpper(testIQN), LUNs: luns}}},
		{Targets: []*Target{{Name: testIQN, LUNs: scsi.NewTarget()}}},
	} {
		if s.Validate() == nil {
			t.Errorf("%+v validated", s.Targets)
		}
	}
}

// TestWriteBudget: writes whose buffers would exceed the session's
// collection budget get their R2T only when earlier writes free theirs.
func TestWriteBudget(t *testing.T) {
	ts := startServer(t, 256<<20, nil)
	in := mustLogin(t, ts, "")
	const size = maxCollect // 32 MiB: two fit in the budget, a third waits
	send := func(itt uint32, lba uint64) {
		var b [bhsLen]byte
		b[0] = opSCSICmd
		b[1] = 0xA0
		binary.BigEndian.PutUint32(b[16:], itt)
		binary.BigEndian.PutUint32(b[20:], size)
		binary.BigEndian.PutUint32(b[24:], in.cmdSN)
		in.cmdSN++
		copy(b[32:], write16(lba, size/512))
		if err := in.send(b, nil); err != nil {
			t.Fatal(err)
		}
	}
	send(10, 0)
	send(11, size/512)
	send(12, 2*size/512)
	r2ts := map[uint32]*pdu{}
	for len(r2ts) < 2 {
		p, err := in.recv()
		if err != nil || p.opcode() != opR2T {
			t.Fatalf("waiting for R2Ts: %v", err)
		}
		r2ts[p.itt()] = p
	}
	if r2ts[10] == nil || r2ts[11] == nil {
		t.Fatalf("R2Ts for %v, want ITTs 10 and 11", r2ts)
	}
	in.nc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if p, err := in.recv(); err == nil {
		t.Fatalf("got opcode %#x for ITT %d while over budget", p.opcode(), p.itt())
	}
	in.nc.SetDeadline(time.Now().Add(20 * time.Second))
	in.pr.r.Reset(in.nc) // the timed-out read left the reader in error
	// Answer ITT 10's bursts until it completes.
	data := make([]byte, 256<<10)
	p := r2ts[10]
	for {
		off, n := p.u32(40), int(p.u32(44))
		for sent, sn := 0, uint32(0); sent < n; sn++ {
			k := min(in.maxSend, n-sent)
			var d [bhsLen]byte
			d[0] = opDataOut
			if sent+k == n {
				d[1] = 0x80
			}
			binary.BigEndian.PutUint32(d[16:], 10)
			copy(d[20:24], p.bhs[20:24])
			binary.BigEndian.PutUint32(d[36:], sn)
			binary.BigEndian.PutUint32(d[40:], off+uint32(sent))
			if err := in.send(d, data[:k]); err != nil {
				t.Fatal(err)
			}
			sent += k
		}
		var err error
		if p, err = in.recv(); err != nil {
			t.Fatal(err)
		}
		if p.opcode() != opR2T || p.itt() != 10 {
			break
		}
	}
	// The response for ITT 10 and the R2T for ITT 12 follow, in either
	// order (the buffer is freed before the status is sent).
	gotResp, gotR2T := false, false
	for {
		switch {
		case p.opcode() == opSCSIResp && p.itt() == 10:
			if p.bhs[3] != 0 {
				t.Fatalf("ITT 10 status %#x", p.bhs[3])
			}
			gotResp = true
		case p.opcode() == opR2T && p.itt() == 12:
			gotR2T = true
		default:
			t.Fatalf("opcode %#x ITT %d after ITT 10's data", p.opcode(), p.itt())
		}
		if gotResp && gotR2T {
			return
		}
		var err error
		if p, err = in.recv(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSeveralTargetsAndLUNs: two targets with their own LUNs; REPORT LUNS
// and SendTargets see each as configured, and I/O reaches the right node.
func TestSeveralTargetsAndLUNs(t *testing.T) {
	nodes := []*mem.Node{mem.New(1 << 20), mem.New(2 << 20), mem.New(4 << 20)}
	mk := func(ns ...*mem.Node) *scsi.Target {
		tg := scsi.NewTarget()
		for i, n := range ns {
			lu, err := scsi.New(n, scsi.Config{})
			if err != nil {
				t.Fatal(err)
			}
			tg.Add(uint64(i), lu)
		}
		return tg
	}
	srv := &Server{
		Targets: []*Target{{Name: testIQN + "-a", LUNs: mk(nodes[0], nodes[1])}, {Name: testIQN + "-b", LUNs: mk(nodes[2])}},
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()
	addr := l.Addr().String()

	reportLUNs := []byte{0xA0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0}
	a := dialInitiator(t, addr)
	if st := a.login(testIQN+"-a", nil, ""); st != 0 {
		t.Fatalf("login a: %#x", st)
	}
	res, err := a.command(0, reportLUNs, nil, 256, true)
	if err != nil || res.status != 0 || binary.BigEndian.Uint32(res.data) != 16 {
		t.Fatalf("REPORT LUNS on a: %v % x", err, res.data)
	}
	if _, err := a.command(1, write16(0, 1), bytes.Repeat([]byte{0xEE}, 512), 512, false); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 512)
	nodes[1].Pread(got, 0)
	if got[0] != 0xEE {
		t.Fatal("a write to target a LUN 1 did not reach its node")
	}
	// LUN 1 does not exist on target b.
	b := dialInitiator(t, addr)
	if st := b.login(testIQN+"-b", nil, ""); st != 0 {
		t.Fatalf("login b: %#x", st)
	}
	res, err = b.command(1, read16(0, 1), nil, 512, true)
	if err != nil || res.status != 2 || len(res.sense) < 14 || res.sense[12] != 0x25 {
		t.Fatalf("READ on a LUN target b lacks: %v status %#x sense % x", err, res.status, res.sense)
	}
	res, err = b.command(0, read16(0, 1), nil, 512, true)
	if err != nil || res.status != 0 || res.data[0] != 0 {
		t.Fatalf("target b LUN 0: %v", err)
	}
}

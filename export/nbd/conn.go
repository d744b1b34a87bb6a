package nbd

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/thinblk/thinblk/internal/nbdwire"
)

const (
	readBufSize  = 64 << 10
	writeBufSize = 256 << 10
	sockBufSize  = 4 << 20
)

// conn is one client connection.
type conn struct {
	s   *Server
	raw net.Conn // the accepted connection (deadlines, Close)
	nc  net.Conn // raw, or the *tls.Conn over it after STARTTLS
	br  *bufio.Reader
	log *slog.Logger

	// Negotiation state, owned by the serving goroutine until transmission.
	noZeroes   bool
	tls        bool
	structured bool // structured replies (also true with extended)
	extended   bool // extended headers
	meta       []uint32
	metaExport string
	exp        *Export
	flags      uint16

	// wmu guards bw and werr once transmission starts; wwait counts
	// workers waiting for wmu, so the holder flushes only when nobody
	// else is about to write.
	wmu   sync.Mutex
	bw    *bufio.Writer
	werr  error
	wwait atomic.Int32

	// rmu guards br, hdr and endReason during transmission: workers take
	// turns reading one request each.
	rmu       sync.Mutex
	hdr       []byte
	endReason string
	busy      atomic.Int32 // requests read and not yet answered
	// queued is set (under rmu) when the reader holds at least one more
	// whole request header: a worker is about to read and run it, so
	// replies may wait in bw for its reply (see send).
	queued atomic.Bool

	budget  budget
	stopped atomic.Bool

	requests atomic.Int64
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{
		s:   s,
		raw: nc,
		nc:  nc,
		br:  bufio.NewReaderSize(nc, readBufSize),
		bw:  bufio.NewWriterSize(nc, writeBufSize),
		log: s.logger().With("remote", nc.RemoteAddr().String()),
	}
	c.budget.limit = MaxConnBuffer
	// Large READ replies (nbdcopy asks 256 KiB at a time, 64 in flight)
	// need fewer write calls and wake-ups with a socket buffer larger
	// than the default (~208 KiB for unix sockets). Best effort.
	if b, ok := nc.(interface{ SetWriteBuffer(int) error }); ok {
		b.SetWriteBuffer(sockBufSize)
	}
	return c
}

// stop asks the connection to finish: no new options or requests are
// read; requests already read complete and are answered.
func (c *conn) stop() {
	c.stopped.Store(true)
	c.raw.SetReadDeadline(time.Now())
	// A client that stopped reading its replies must not hold shutdown.
	c.raw.SetWriteDeadline(time.Now().Add(10 * time.Second))
}

func (c *conn) stopping() bool { return c.stopped.Load() }

// serve runs the connection to its end.
func (c *conn) serve() {
	defer c.raw.Close()
	c.log.Info("nbd: client connected")
	if err := c.negotiate(); err != nil {
		if errors.Is(err, errAbort) || errors.Is(err, io.EOF) {
			c.log.Info("nbd: client left during negotiation", "reason", err.Error())
		} else {
			c.log.Warn("nbd: negotiation failed", "err", err.Error())
		}
		return
	}
	c.log.Info("nbd: transmission", "export", c.exp.Name, "structured", c.structured,
		"extended", c.extended, "tls", c.tls, "meta-contexts", len(c.meta), "flags", c.flags)
	reason := c.transmit()
	c.log.Info("nbd: client disconnected", "export", c.exp.Name, "reason", reason, "requests", c.requests.Load())
}

// job is one request read from the client.
type job struct {
	req     nbdwire.Request
	payload *[]byte // WRITE data, from the pool
	errno   uint32  // set when the request was refused while reading it
	msg     string
	charge  int64 // budget held
}

// transmit serves requests until DISC, EOF, a protocol violation or stop,
// and returns why it ended. Server.Workers goroutines take turns reading
// one request each (under rmu) and then run it themselves, so a request
// is executed by the goroutine that read it, without a hand-off; up to
// Workers requests run at once and their replies go out in any order.
func (c *conn) transmit() string {
	if c.stopping() {
		c.raw.SetReadDeadline(time.Now())
	}
	c.hdr = make([]byte, nbdwire.RequestSize(c.extended))
	var workers sync.WaitGroup
	for range c.s.workers() {
		workers.Add(1)
		go func() {
			defer workers.Done()
			c.serveRequests()
		}()
	}
	workers.Wait()
	c.wmu.Lock()
	if c.werr == nil {
		c.werr = c.bw.Flush()
	}
	c.wmu.Unlock()
	return c.endReason
}

// serveRequests is one worker: read a request, run it, repeat.
func (c *conn) serveRequests() {
	for {
		c.rmu.Lock()
		if c.endReason != "" {
			c.rmu.Unlock()
			return
		}
		j, reason := c.readRequest()
		if j == nil {
			c.endReason = reason
			c.rmu.Unlock()
			return
		}
		c.busy.Add(1)
		c.queued.Store(c.br.Buffered() >= len(c.hdr))
		c.rmu.Unlock()
		c.run(j)
		if c.busy.Add(-1) == 0 && !c.queued.Load() {
			c.flushPending()
		}
	}
}

// flushPending flushes replies that send left in the buffer because
// other requests were still running when they were written.
func (c *conn) flushPending() {
	c.wmu.Lock()
	if c.werr == nil && c.bw.Buffered() > 0 {
		if c.werr = c.bw.Flush(); c.werr != nil {
			c.raw.Close()
		}
	}
	c.wmu.Unlock()
}

// readRequest reads one request (and its payload). It returns nil and the
// reason when the connection must end.
// Preconditions: c.rmu held.
func (c *conn) readRequest() (*job, string) {
	hdr := c.hdr
	maxPay := uint64(c.exp.maxPay)
	if c.br.Buffered() < len(hdr) {
		// About to wait for the client: nothing may sit in bw meanwhile.
		c.flushPending()
	}
	{
		if _, err := io.ReadFull(c.br, hdr); err != nil {
			if c.stopping() {
				return nil, "server shutdown"
			}
			if errors.Is(err, io.EOF) {
				return nil, "EOF"
			}
			return nil, err.Error()
		}
		req, err := nbdwire.DecodeRequest(hdr, c.extended)
		if err != nil {
			c.log.Warn("nbd: protocol violation, disconnecting", "err", err.Error())
			return nil, "bad request magic"
		}
		c.requests.Add(1)
		if req.Type == nbdwire.CmdDisc {
			return nil, "NBD_CMD_DISC"
		}
		j := &job{req: req}
		if req.HasPayload(c.extended) {
			if req.Length > maxPay {
				if c.extended {
					c.log.Warn("nbd: payload over the maximum, disconnecting", "length", req.Length)
					return nil, "oversized payload"
				}
				// A compact WRITE payload is at most 4 GiB: skip it and
				// refuse the request; the stream stays in sync.
				if _, err := io.CopyN(io.Discard, c.br, int64(req.Length)); err != nil {
					return nil, err.Error()
				}
				j.errno, j.msg = nbdwire.EINVAL, "payload larger than the maximum payload size"
			} else {
				if c.br.Buffered() < int(req.Length) {
					// The payload (or budget for it) may take a while.
					c.flushPending()
				}
				j.charge = int64(req.Length)
				c.budget.acquire(j.charge)
				j.payload = getBuf(int(req.Length))
				if _, err := io.ReadFull(c.br, *j.payload); err != nil {
					putBuf(j.payload)
					c.budget.release(j.charge)
					return nil, err.Error()
				}
				if req.Type != nbdwire.CmdWrite {
					j.errno, j.msg = nbdwire.EINVAL, "command takes no payload"
				}
			}
		} else if req.Type == nbdwire.CmdRead && req.Length <= maxPay {
			j.charge = int64(req.Length)
			c.budget.acquire(j.charge)
		}
		return j, ""
	}
}

// send writes one reply under the writer lock; build appends the reply to
// the buffered writer. The writer is flushed unless more replies are sure
// to follow soon: another reply waiting for the lock, other requests
// running (the worker that finishes the last of them flushes, see
// flushPending), or another request already received and about to run
// (c.queued; the reader flushes before it waits for the client, see
// readRequest). So many replies go out in one write. After a write error
// later replies are dropped (the connection is dead).
// Preconditions: called from run, so c.busy counts the caller.
func (c *conn) send(build func(w *bufio.Writer) error) {
	c.wwait.Add(1)
	c.wmu.Lock()
	c.wwait.Add(-1)
	if c.werr == nil {
		err := build(c.bw)
		if err == nil && c.wwait.Load() == 0 && c.busy.Load() <= 1 && !c.queued.Load() {
			err = c.bw.Flush()
		}
		if err != nil {
			c.werr = err
			c.raw.Close()
		}
	}
	c.wmu.Unlock()
}

// budget bounds the payload bytes a connection holds.
type budget struct {
	mu    sync.Mutex
	cond  *sync.Cond
	used  int64
	limit int64
}

// acquire waits until n more bytes fit (a request larger than the limit
// runs alone).
func (b *budget) acquire(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	if b.cond == nil {
		b.cond = sync.NewCond(&b.mu)
	}
	for b.used > 0 && b.used+n > b.limit {
		b.cond.Wait()
	}
	b.used += n
	b.mu.Unlock()
}

func (b *budget) release(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	if b.cond != nil {
		b.cond.Broadcast()
	}
	b.mu.Unlock()
}

// Payload buffers are pooled by power-of-two size class (4 KiB .. 32 MiB).
var bufPools [14]sync.Pool

func sizeClass(n int) int {
	c := 0
	for s := 4096; s < n && c < len(bufPools)-1; s <<= 1 {
		c++
	}
	return c
}

// getBuf returns a buffer of length n. Buffers over 32 MiB are not pooled.
func getBuf(n int) *[]byte {
	cls := sizeClass(n)
	if capacity := 4096 << cls; n <= capacity {
		if v := bufPools[cls].Get(); v != nil {
			b := v.(*[]byte)
			*b = (*b)[:n]
			return b
		}
		b := make([]byte, n, capacity)
		return &b
	}
	b := make([]byte, n)
	return &b
}

func putBuf(b *[]byte) {
	if b == nil {
		return
	}
	cls := sizeClass(cap(*b))
	if cap(*b) == 4096<<cls {
		bufPools[cls].Put(b)
	}
}

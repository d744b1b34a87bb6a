package nbd

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/internal/nbdwire"
)

var be = binary.BigEndian

func init() {
	for _, s := range []string{"nbd", "nbd+tcp", "nbd+unix", "nbds", "nbds+tcp", "nbds+unix"} {
		image.RegisterProtocol(s, func(url string, readOnly bool) (block.Driver, error) {
			return Dial(url, readOnly)
		})
	}
}

// Options tune DialOptions.
type Options struct {
	// TLSConfig forces TLS with this configuration (else TLS is used for
	// nbds URLs, configured from tls-certificates).
	TLSConfig *tls.Config
	// NoExtendedHeaders skips NBD_OPT_EXTENDED_HEADERS (structured replies
	// only).
	NoExtendedHeaders bool
}

// Client is an NBD export as a block.Driver. It is safe for concurrent use;
// requests are pipelined on one connection.
type Client struct {
	name     string
	readOnly bool

	conn net.Conn
	br   *bufio.Reader // owned by the reader goroutine after Dial

	// Negotiated at Dial, read-only afterwards.
	size                    int64
	flags                   uint16
	structured, extended    bool
	hasBase                 bool
	baseID                  uint32
	minBlk, prefBlk, maxPay uint32

	wmu sync.Mutex // guards bw
	bw  *bufio.Writer

	mu      sync.Mutex // guards the fields below
	pending map[uint64]*call
	cookie  uint64
	dead    error // set when the connection failed or closed
	gen     uint64
	cache   statusCache
	closed  bool

	readerDone chan struct{}
}

var _ block.Driver = (*Client)(nil)

// call is one request waiting for its reply.
type call struct {
	req nbdwire.Request
	buf []byte // READ destination (len == req.Length)
	ds  []nbdwire.Descriptor
	// covered counts the READ bytes the reply's content chunks described;
	// a successful reply must cover the whole request.
	covered uint64
	err     error
	done    chan struct{}
}

type statusCache struct {
	gen uint64
	off int64
	ds  []nbdwire.Descriptor
	ok  bool
}

// Dial connects to an NBD URL (see the package documentation). With
// readOnly, every write fails with block.ErrReadOnly.
func Dial(rawURL string, readOnly bool) (*Client, error) {
	return DialOptions(rawURL, readOnly, Options{})
}

// DialOptions is Dial with options.
func DialOptions(rawURL string, readOnly bool, o Options) (*Client, error) {
	t, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	nc, err := dial(t)
	if err != nil {
		return nil, &block.OpError{Op: "open", Node: rawURL, Err: err}
	}
	return newClient(nc, rawURL, t, readOnly, o)
}

// newClient negotiates on an open connection (closed on failure).
func newClient(nc net.Conn, name string, t Target, readOnly bool, o Options) (*Client, error) {
	c := &Client{
		name:       name,
		readOnly:   readOnly,
		conn:       nc,
		br:         bufio.NewReaderSize(nc, 256<<10),
		bw:         bufio.NewWriterSize(nc, 256<<10),
		pending:    map[uint64]*call{},
		readerDone: make(chan struct{}),
	}
	if err := c.handshake(t, o); err != nil {
		nc.Close()
		return nil, &block.OpError{Op: "open", Node: name, Err: err}
	}
	if c.flags&nbdwire.FlagReadOnly != 0 {
		c.readOnly = true
	}
	go c.readLoop()
	return c, nil
}

func (c *Client) opError(op string, off, n int64, err error) error {
	return &block.OpError{Op: op, Node: c.name, Off: off, Len: n, Err: err}
}

// fail marks the connection dead and completes every pending call.
func (c *Client) fail(err error) {
	c.mu.Lock()
	if c.dead == nil {
		c.dead = err
	}
	pend := c.pending
	c.pending = map[uint64]*call{}
	c.mu.Unlock()
	for _, cl := range pend {
		cl.err = err
		close(cl.done)
	}
	c.conn.Close()
}

// readLoop reads replies and completes calls until the connection ends.
func (c *Client) readLoop() {
	defer close(c.readerDone)
	var hdr [nbdwire.ExtendedReplySize]byte
	for {
		if _, err := io.ReadFull(c.br, hdr[:4]); err != nil {
			c.fail(fmt.Errorf("%w: connection lost: %v", block.ErrClosed, err))
			return
		}
		n := nbdwire.ReplySize(be.Uint32(hdr[:]))
		if n == 0 {
			c.fail(fmt.Errorf("%w: bad reply magic %#x", nbdwire.ErrMalformed, be.Uint32(hdr[:])))
			return
		}
		if _, err := io.ReadFull(c.br, hdr[4:n]); err != nil {
			c.fail(fmt.Errorf("%w: connection lost: %v", block.ErrClosed, err))
			return
		}
		h, err := nbdwire.DecodeReplyHeader(hdr[:n])
		if err == nil {
			err = c.reply(h)
		}
		if err != nil {
			c.fail(err)
			return
		}
	}
}

// reply consumes one reply message (and its payload).
func (c *Client) reply(h nbdwire.ReplyHeader) error {
	c.mu.Lock()
	cl := c.pending[h.Cookie]
	c.mu.Unlock()
	if cl == nil {
		return fmt.Errorf("%w: reply for unknown cookie %d", nbdwire.ErrMalformed, h.Cookie)
	}
	r := cl.req
	if h.Simple() {
		if h.Error != 0 {
			cl.err = nbdwire.Errno(h.Error)
		} else if r.Type == nbdwire.CmdRead {
			if _, err := io.ReadFull(c.br, cl.buf); err != nil {
				return err
			}
		}
		c.complete(h.Cookie, cl)
		return nil
	}
	if h.Length > uint64(c.maxPay)+64 && !(h.Type == nbdwire.ReplyTypeBlockStatus || h.Type == nbdwire.ReplyTypeBlockStatusExt) {
		return fmt.Errorf("%w: reply chunk of %d bytes", nbdwire.ErrMalformed, h.Length)
	}
	switch h.Type {
	case nbdwire.ReplyTypeNone:
		if h.Length != 0 {
			return fmt.Errorf("%w: NONE chunk with payload", nbdwire.ErrMalformed)
		}
	case nbdwire.ReplyTypeOffsetData:
		if r.Type != nbdwire.CmdRead || h.Length < 9 {
			return fmt.Errorf("%w: unexpected data chunk", nbdwire.ErrMalformed)
		}
		var ob [8]byte
		if _, err := io.ReadFull(c.br, ob[:]); err != nil {
			return err
		}
		off, n := be.Uint64(ob[:]), h.Length-8
		if off < r.Offset || off-r.Offset > r.Length || n > r.Length-(off-r.Offset) {
			return fmt.Errorf("%w: data chunk [%d, +%d) outside the request", nbdwire.ErrMalformed, off, n)
		}
		if _, err := io.ReadFull(c.br, cl.buf[off-r.Offset:off-r.Offset+n]); err != nil {
			return err
		}
		cl.covered += n
	case nbdwire.ReplyTypeOffsetHole:
		var p [nbdwire.OffsetHoleSize]byte
		if r.Type != nbdwire.CmdRead || h.Length != nbdwire.OffsetHoleSize {
			return fmt.Errorf("%w: unexpected hole chunk", nbdwire.ErrMalformed)
		}
		if _, err := io.ReadFull(c.br, p[:]); err != nil {
			return err
		}
		off, size, err := nbdwire.DecodeOffsetHole(p[:])
		if err != nil {
			return err
		}
		n := uint64(size)
		if off < r.Offset || off-r.Offset > r.Length || n > r.Length-(off-r.Offset) {
			return fmt.Errorf("%w: hole chunk [%d, +%d) outside the request", nbdwire.ErrMalformed, off, n)
		}
		clear(cl.buf[off-r.Offset : off-r.Offset+n])
		cl.covered += n
	case nbdwire.ReplyTypeBlockStatus, nbdwire.ReplyTypeBlockStatusExt:
		ext := h.Type == nbdwire.ReplyTypeBlockStatusExt
		if r.Type != nbdwire.CmdBlockStatus || ext != c.extended || h.Length > uint64(nbdwire.BlockStatusSize(ext, nbdwire.MaxDescriptors)) {
			return fmt.Errorf("%w: unexpected block status chunk", nbdwire.ErrMalformed)
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(c.br, p); err != nil {
			return err
		}
		id, ds, err := nbdwire.DecodeBlockStatus(p, ext)
		if err != nil {
			return err
		}
		if id == c.baseID {
			cl.ds = ds
		}
	default:
		if !nbdwire.IsErrorChunk(h.Type) {
			return fmt.Errorf("%w: unknown reply type %d", nbdwire.ErrMalformed, h.Type)
		}
		if h.Length > 64<<10 {
			return fmt.Errorf("%w: error chunk of %d bytes", nbdwire.ErrMalformed, h.Length)
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(c.br, p); err != nil {
			return err
		}
		errno, msg, err := nbdwire.DecodeErrorChunk(p)
		if err != nil {
			return err
		}
		if cl.err == nil {
			cl.err = fmt.Errorf("%w (server: %s)", nbdwire.Errno(errno), msg)
		}
	}
	if h.Done() {
		if r.Type == nbdwire.CmdRead && cl.err == nil && cl.covered != r.Length {
			return fmt.Errorf("%w: read reply covered %d of %d bytes", nbdwire.ErrMalformed, cl.covered, r.Length)
		}
		c.complete(h.Cookie, cl)
	}
	return nil
}

func (c *Client) complete(cookie uint64, cl *call) {
	c.mu.Lock()
	delete(c.pending, cookie)
	c.mu.Unlock()
	close(cl.done)
}

// do sends one request (with payload for WRITE) and waits for its reply.
func (c *Client) do(typ, flags uint16, off, n uint64, payload, buf []byte) (*call, error) {
	cl := &call{buf: buf, done: make(chan struct{})}
	c.mu.Lock()
	if c.dead != nil {
		err := c.dead
		c.mu.Unlock()
		return nil, err
	}
	c.cookie++
	if payload != nil && c.extended {
		flags |= nbdwire.CmdFlagPayloadLen
	}
	cl.req = nbdwire.Request{Flags: flags, Type: typ, Cookie: c.cookie, Offset: off, Length: n}
	c.pending[c.cookie] = cl
	c.mu.Unlock()

	var hb [nbdwire.ExtendedRequestSize]byte
	c.wmu.Lock()
	c.bw.Write(nbdwire.AppendRequest(hb[:0], cl.req, c.extended))
	if payload != nil {
		c.bw.Write(payload)
	}
	err := c.bw.Flush()
	c.wmu.Unlock()
	if err != nil {
		c.fail(fmt.Errorf("%w: sending request: %v", block.ErrClosed, err))
	}
	<-cl.done
	return cl, cl.err
}

// mapErr turns an NBD error into the block sentinel it stands for.
func mapErr(err error) error {
	var e nbdwire.Errno
	if !errors.As(err, &e) {
		return err
	}
	var s error
	switch uint32(e) {
	case nbdwire.EPERM:
		s = block.ErrReadOnly
	case nbdwire.ENOSPC:
		s = block.ErrNoSpace
	case nbdwire.ENOTSUP:
		s = block.ErrNotSupported
	case nbdwire.EINVAL, nbdwire.EOVERFLOW:
		s = block.ErrInvalid
	case nbdwire.ESHUTDOWN:
		s = block.ErrClosed
	default:
		return err
	}
	return fmt.Errorf("%w: %w", s, err)
}

// invalidate drops cached status after a change through this node.
func (c *Client) invalidate() {
	c.mu.Lock()
	c.gen++
	c.mu.Unlock()
}

// Size returns the export size.
func (c *Client) Size() int64 { return c.size }

// Pread reads p at off in requests of at most the maximum payload.
func (c *Client) Pread(p []byte, off int64) error {
	if err := block.CheckRange(off, int64(len(p)), c.size); err != nil {
		return c.opError("pread", off, int64(len(p)), err)
	}
	if len(p) == 0 {
		return nil
	}
	return block.SplitRequest(off, int64(len(p)), int64(c.maxPay), func(o, n int64) error {
		q := p[o-off : o-off+n]
		if _, err := c.do(nbdwire.CmdRead, 0, uint64(o), uint64(n), nil, q); err != nil {
			return c.opError("pread", o, n, mapErr(err))
		}
		return nil
	})
}

func (c *Client) checkWrite(op string, off, n int64) error {
	if c.readOnly {
		return c.opError(op, off, n, block.ErrReadOnly)
	}
	if err := block.CheckRange(off, n, c.size); err != nil {
		return c.opError(op, off, n, err)
	}
	return nil
}

// fuaFlag returns the FUA command flag when asked for and supported; when
// the server has no FUA, needFlush says a flush must follow.
func (c *Client) fuaFlag(flags block.Flags) (cmd uint16, needFlush bool) {
	if !flags.Has(block.FUA) {
		return 0, false
	}
	if c.flags&nbdwire.FlagSendFUA != 0 {
		return nbdwire.CmdFlagFUA, false
	}
	return 0, c.flags&nbdwire.FlagSendFlush != 0
}

// Pwrite writes p at off; FUA is passed on, or emulated with a flush.
func (c *Client) Pwrite(p []byte, off int64, flags block.Flags) error {
	if err := c.checkWrite("pwrite", off, int64(len(p))); err != nil {
		return err
	}
	if len(p) == 0 {
		return nil
	}
	defer c.invalidate()
	fua, flush := c.fuaFlag(flags)
	err := block.SplitRequest(off, int64(len(p)), int64(c.maxPay), func(o, n int64) error {
		if _, err := c.do(nbdwire.CmdWrite, fua, uint64(o), uint64(n), p[o-off:o-off+n], nil); err != nil {
			return c.opError("pwrite", o, n, mapErr(err))
		}
		return nil
	})
	if err == nil && flush {
		err = c.Flush()
	}
	return err
}

// maxEffect is the largest effect length sent in one request.
func (c *Client) maxEffect() int64 {
	if c.extended {
		return 1 << 62
	}
	return int64((1<<32 - 1) / uint64(c.minBlk) * uint64(c.minBlk))
}

// Discard sends TRIM when the server offers it; otherwise it does nothing.
func (c *Client) Discard(off, n int64, flags block.Flags) error {
	if err := c.checkWrite("discard", off, n); err != nil {
		return err
	}
	if c.flags&nbdwire.FlagSendTrim == 0 || n == 0 {
		return nil
	}
	defer c.invalidate()
	fua, flush := c.fuaFlag(flags)
	err := block.SplitRequest(off, n, c.maxEffect(), func(o, n int64) error {
		if _, err := c.do(nbdwire.CmdTrim, fua, uint64(o), uint64(n), nil, nil); err != nil {
			return c.opError("discard", o, n, mapErr(err))
		}
		return nil
	})
	if err == nil && flush {
		err = c.Flush()
	}
	return err
}

// WriteZeroes sends WRITE_ZEROES: NO_HOLE unless MayUnmap, FAST_ZERO for
// NoFallback. Without server support it returns block.ErrNotSupported
// (block.ZeroRange then writes zeros).
func (c *Client) WriteZeroes(off, n int64, flags block.Flags) error {
	if err := c.checkWrite("write-zeroes", off, n); err != nil {
		return err
	}
	if c.flags&nbdwire.FlagSendWriteZeroes == 0 {
		return c.opError("write-zeroes", off, n, block.ErrNotSupported)
	}
	if n == 0 {
		return nil
	}
	fua, flush := c.fuaFlag(flags)
	cmd := fua
	if !flags.Has(block.MayUnmap) {
		cmd |= nbdwire.CmdFlagNoHole
	}
	if flags.Has(block.NoFallback) {
		if c.flags&nbdwire.FlagSendFastZero == 0 {
			return c.opError("write-zeroes", off, n, block.ErrNotSupported)
		}
		cmd |= nbdwire.CmdFlagFastZero
	}
	defer c.invalidate()
	err := block.SplitRequest(off, n, c.maxEffect(), func(o, n int64) error {
		if _, err := c.do(nbdwire.CmdWriteZeroes, cmd, uint64(o), uint64(n), nil, nil); err != nil {
			return c.opError("write-zeroes", o, n, mapErr(err))
		}
		return nil
	})
	if err == nil && flush {
		err = c.Flush()
	}
	return err
}

// statusOf maps base:allocation flags to block status.
func statusOf(flags uint64) block.Status {
	hole := flags&uint64(nbdwire.StateHole) != 0
	zero := flags&uint64(nbdwire.StateZero) != 0
	var s block.Status
	switch {
	case hole && zero:
		s = block.Zero
	case zero:
		s = block.Data | block.Zero
	default:
		s = block.Data
	}
	if !hole {
		s |= block.Allocated
	}
	return s
}

// BlockStatus asks base:allocation (all Data|Allocated when the server has
// no block status). Extents of one reply are cached until the next change.
func (c *Client) BlockStatus(off, n int64) (block.Extent, error) {
	if err := block.CheckRange(off, n, c.size); err != nil || n == 0 {
		if err == nil {
			err = fmt.Errorf("%w: empty block status request", block.ErrInvalid)
		}
		return block.Extent{}, c.opError("block-status", off, n, err)
	}
	if !c.hasBase {
		return block.Extent{Off: off, Len: n, Status: block.Data | block.Allocated, HostOffset: -1}, nil
	}
	c.mu.Lock()
	if e, ok := c.cachedLocked(off, n); ok {
		c.mu.Unlock()
		return e, nil
	}
	gen := c.gen
	c.mu.Unlock()
	ask := min(n, c.maxEffect())
	// Ask for at least a few MiB so one reply serves the calls that follow.
	ask = max(ask, min(c.size-off, 64<<20, c.maxEffect()))
	cl, err := c.do(nbdwire.CmdBlockStatus, 0, uint64(off), uint64(ask), nil, nil)
	if err != nil {
		return block.Extent{}, c.opError("block-status", off, n, mapErr(err))
	}
	if len(cl.ds) == 0 {
		return block.Extent{}, c.opError("block-status", off, n, fmt.Errorf("%w: no base:allocation extents", nbdwire.ErrMalformed))
	}
	c.mu.Lock()
	if c.gen == gen {
		c.cache = statusCache{gen: gen, off: off, ds: cl.ds, ok: true}
	}
	c.mu.Unlock()
	d := cl.ds[0]
	return block.Extent{Off: off, Len: min(int64(min(d.Length, uint64(n))), c.size-off), Status: statusOf(d.Flags), HostOffset: -1}, nil
}

// cachedLocked answers from the cached reply.
// Preconditions: c.mu held.
func (c *Client) cachedLocked(off, n int64) (block.Extent, bool) {
	ca := c.cache
	if !ca.ok || ca.gen != c.gen || off < ca.off {
		return block.Extent{}, false
	}
	pos := ca.off
	for _, d := range ca.ds {
		end := pos + int64(d.Length)
		if off < end && end > pos {
			ln := min(end-off, n, c.size-off)
			if ln <= 0 {
				return block.Extent{}, false
			}
			return block.Extent{Off: off, Len: ln, Status: statusOf(d.Flags), HostOffset: -1}, true
		}
		pos = end
	}
	return block.Extent{}, false
}

// Flush sends FLUSH when the server offers it.
func (c *Client) Flush() error {
	if c.flags&nbdwire.FlagSendFlush == 0 || c.readOnly {
		return nil
	}
	if _, err := c.do(nbdwire.CmdFlush, 0, 0, 0, nil, nil); err != nil {
		return c.opError("flush", 0, 0, mapErr(err))
	}
	return nil
}

// Close sends NBD_CMD_DISC and closes the connection. Requests still
// running fail with block.ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	dead := c.dead != nil
	c.cookie++
	disc := nbdwire.Request{Type: nbdwire.CmdDisc, Cookie: c.cookie}
	c.mu.Unlock()
	if !dead {
		c.wmu.Lock()
		c.bw.Write(nbdwire.AppendRequest(nil, disc, c.extended))
		c.bw.Flush()
		c.wmu.Unlock()
		if cw, ok := c.conn.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
	}
	c.fail(fmt.Errorf("%w: client closed", block.ErrClosed))
	<-c.readerDone
	return nil
}

// Caps derives the node's capabilities from the transmission flags.
func (c *Client) Caps() block.Caps {
	w := !c.readOnly
	f := c.flags
	return block.Caps{
		Write:       w,
		Flush:       w && f&nbdwire.FlagSendFlush != 0,
		FUA:         w && f&nbdwire.FlagSendFUA != 0,
		Discard:     w && f&nbdwire.FlagSendTrim != 0,
		WriteZeroes: w && f&nbdwire.FlagSendWriteZeroes != 0,
		FastZero:    w && f&nbdwire.FlagSendFastZero != 0,
		// The protocol does not say whether trimmed ranges read as zeros
		// or whether WRITE_ZEROES without NO_HOLE really frees space.
		BlockStatus: c.hasBase,
	}
}

// Limits reports the server's block size constraints.
func (c *Client) Limits() block.Limits {
	return block.Limits{
		RequestAlign:    int64(c.minBlk),
		MaxTransfer:     int64(c.maxPay),
		OptimalTransfer: int64(c.prefBlk),
	}
}

// Info reports the export; allocation on the server is not known.
func (c *Client) Info() (block.Info, error) {
	return block.Info{
		Format:               "nbd",
		VirtualSize:          c.size,
		AllocatedBytes:       -1,
		Watermark:            -1,
		UnallocatedReadsZero: true,
	}, nil
}

// Extended reports whether extended headers were negotiated (for tests).
func (c *Client) Extended() bool { return c.extended }

// Structured reports whether structured replies were negotiated.
func (c *Client) Structured() bool { return c.structured }

// TransmissionFlags returns the export's flags as the server sent them.
func (c *Client) TransmissionFlags() uint16 { return c.flags }

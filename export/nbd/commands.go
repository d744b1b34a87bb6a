package nbd

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/internal/nbdwire"
)

// sparseReadMin is the smallest structured READ for which the server asks
// block status to send holes as OFFSET_HOLE chunks; smaller reads are sent
// as data (the status lookup would cost more than the bytes it saves).
const sparseReadMin = 64 << 10

// slowWrite is the WRITE size above which a write does not hold back the
// replies of other requests while it runs (see send).
const slowWrite = 256 << 10

// maxStatusDescriptors bounds the descriptors in one status chunk.
const maxStatusDescriptors = 1 << 16

// allowedFlags lists the command flags each command accepts.
var allowedFlags = map[uint16]uint16{
	nbdwire.CmdRead:        nbdwire.CmdFlagFUA | nbdwire.CmdFlagDF,
	nbdwire.CmdWrite:       nbdwire.CmdFlagFUA | nbdwire.CmdFlagPayloadLen,
	nbdwire.CmdFlush:       nbdwire.CmdFlagFUA,
	nbdwire.CmdTrim:        nbdwire.CmdFlagFUA,
	nbdwire.CmdCache:       nbdwire.CmdFlagFUA,
	nbdwire.CmdWriteZeroes: nbdwire.CmdFlagFUA | nbdwire.CmdFlagNoHole | nbdwire.CmdFlagFastZero,
	nbdwire.CmdBlockStatus: nbdwire.CmdFlagFUA | nbdwire.CmdFlagReqOne,
}

// validate checks a request against the negotiation and the export, and
// returns the NBD error the spec names for it (0 when it may run).
func (c *conn) validate(r nbdwire.Request) (uint32, string) {
	e := c.exp
	allowed, known := allowedFlags[r.Type]
	if !known {
		return nbdwire.EINVAL, fmt.Sprintf("unknown command %d", r.Type)
	}
	if r.Flags&^allowed != 0 {
		return nbdwire.EINVAL, fmt.Sprintf("flags %#x not valid for %s", r.Flags, nbdwire.CommandName(r.Type))
	}
	if r.Flags&nbdwire.CmdFlagDF != 0 && !c.structured {
		return nbdwire.EINVAL, "DF without structured replies"
	}
	if r.Flags&nbdwire.CmdFlagFastZero != 0 && e.flags&nbdwire.FlagSendFastZero == 0 {
		return nbdwire.EINVAL, "FAST_ZERO not negotiated"
	}
	if c.extended && r.Type == nbdwire.CmdWrite && r.Flags&nbdwire.CmdFlagPayloadLen == 0 {
		return nbdwire.EINVAL, "extended WRITE without PAYLOAD_LEN"
	}
	if !c.extended && r.Flags&nbdwire.CmdFlagPayloadLen != 0 {
		return nbdwire.EINVAL, "PAYLOAD_LEN without extended headers"
	}
	mutating := r.Type == nbdwire.CmdWrite || r.Type == nbdwire.CmdTrim || r.Type == nbdwire.CmdWriteZeroes
	if mutating && !e.writable() {
		return nbdwire.EPERM, "export is read-only"
	}
	if r.Type == nbdwire.CmdFlush || r.Type == nbdwire.CmdDisc {
		return 0, ""
	}
	size := uint64(e.node.Size())
	if r.Offset > size || r.Length > size-r.Offset {
		if r.Type == nbdwire.CmdWrite || r.Type == nbdwire.CmdWriteZeroes {
			return nbdwire.ENOSPC, fmt.Sprintf("request [%d, +%d) past the end of the export (%d bytes)", r.Offset, r.Length, size)
		}
		return nbdwire.EINVAL, fmt.Sprintf("request [%d, +%d) past the end of the export (%d bytes)", r.Offset, r.Length, size)
	}
	if r.Type == nbdwire.CmdBlockStatus {
		if len(c.meta) == 0 {
			return nbdwire.EINVAL, "no metadata context negotiated"
		}
		if r.Length == 0 {
			return nbdwire.EINVAL, "empty block status request"
		}
		return 0, ""
	}
	if m := uint64(e.minBlk); m > 1 && (r.Offset%m != 0 || r.Length%m != 0) {
		return nbdwire.EINVAL, fmt.Sprintf("request not aligned to the minimum block size %d", m)
	}
	if r.Type == nbdwire.CmdRead && r.Length > uint64(e.maxPay) {
		return nbdwire.EINVAL, fmt.Sprintf("read of %d bytes over the maximum payload %d", r.Length, e.maxPay)
	}
	return 0, ""
}

// run executes one request and sends its reply.
func (c *conn) run(j *job) {
	defer func() {
		putBuf(j.payload)
		c.budget.release(j.charge)
	}()
	r := j.req
	if j.errno != 0 {
		c.replyErr(r, j.errno, j.msg)
		return
	}
	if errno, msg := c.validate(r); errno != 0 {
		c.replyErr(r, errno, msg)
		return
	}
	e := c.exp
	node := e.node
	off, n := int64(r.Offset), int64(r.Length)
	fua := block.Flags(0)
	if r.Flags&nbdwire.CmdFlagFUA != 0 && e.flags&nbdwire.FlagSendFUA != 0 {
		fua = block.FUA
	}
	// Slow commands (flush, trim, write-zeroes, FUA or large writes) do
	// not count as busy while they run, so the replies of other requests
	// are not held back waiting for them (see send).
	slow := func(f func() error) error {
		c.busy.Add(-1)
		defer c.busy.Add(1)
		return f()
	}
	var err error
	switch r.Type {
	case nbdwire.CmdRead:
		c.read(r)
		return
	case nbdwire.CmdBlockStatus:
		c.blockStatus(r)
		return
	case nbdwire.CmdWrite:
		write := func() error {
			h := e.locks.Lock(off, off+n)
			defer e.locks.Unlock(h)
			return node.Pwrite(*j.payload, off, fua)
		}
		if n > slowWrite || fua != 0 {
			err = slow(write)
		} else {
			err = write()
		}
	case nbdwire.CmdFlush:
		err = slow(node.Flush)
	case nbdwire.CmdTrim:
		if e.flags&nbdwire.FlagSendTrim != 0 && n > 0 {
			err = slow(func() error {
				h := e.locks.Lock(off, off+n)
				defer e.locks.Unlock(h)
				return block.DiscardRange(node, off, n, fua)
			})
		}
	case nbdwire.CmdWriteZeroes:
		flags := fua
		if r.Flags&nbdwire.CmdFlagNoHole == 0 {
			flags |= block.MayUnmap
		}
		if r.Flags&nbdwire.CmdFlagFastZero != 0 {
			if !node.Caps().FastZero {
				c.replyErr(r, nbdwire.ENOTSUP, "zeroing would not be faster than writing")
				return
			}
			flags |= block.NoFallback
		}
		if n > 0 {
			err = slow(func() error {
				h := e.locks.Lock(off, off+n)
				defer e.locks.Unlock(h)
				return block.ZeroRange(node, off, n, flags)
			})
		}
	case nbdwire.CmdCache:
		// A hint: nothing to prefetch into, and success is allowed.
	}
	if err != nil {
		c.replyErr(r, Errno(err), err.Error())
		return
	}
	c.replyOK(r)
}

// replyOK sends a successful reply without payload.
func (c *conn) replyOK(r nbdwire.Request) {
	c.send(func(w *bufio.Writer) error {
		var b [nbdwire.ExtendedReplySize]byte
		if c.extended {
			_, err := w.Write(nbdwire.AppendChunkHeader(b[:0], true, nbdwire.ReplyFlagDone, nbdwire.ReplyTypeNone, r.Cookie, r.Offset, 0))
			return err
		}
		_, err := w.Write(nbdwire.AppendSimpleReply(b[:0], 0, r.Cookie))
		return err
	})
}

// replyErr sends an error: an error chunk when structured replies are on
// (with msg for the user), else a simple reply.
func (c *conn) replyErr(r nbdwire.Request, errno uint32, msg string) {
	if errno == 0 {
		errno = nbdwire.EIO
	}
	c.send(func(w *bufio.Writer) error {
		if !c.structured {
			_, err := w.Write(nbdwire.AppendSimpleReply(nil, errno, r.Cookie))
			return err
		}
		p := nbdwire.AppendErrorChunk(nil, errno, msg)
		b := nbdwire.AppendChunkHeader(nil, c.extended, nbdwire.ReplyFlagDone, nbdwire.ReplyTypeError, r.Cookie, r.Offset, uint64(len(p)))
		_, err := w.Write(append(b, p...))
		return err
	})
}

// segment is a piece of a structured READ reply.
type segment struct {
	off  int64
	n    int64
	hole bool
}

// read answers NBD_CMD_READ: one simple reply, or structured chunks with
// holes as OFFSET_HOLE when the range is large enough to be worth a status
// lookup (and DF is not set).
func (c *conn) read(r nbdwire.Request) {
	node := c.exp.node
	off, n := int64(r.Offset), int64(r.Length)
	if n == 0 {
		c.readDone(r)
		return
	}
	buf := getBuf(int(n))
	defer putBuf(buf)
	p := *buf
	if !c.structured {
		if err := node.Pread(p, off); err != nil {
			c.replyErr(r, Errno(err), err.Error())
			return
		}
		c.send(func(w *bufio.Writer) error {
			var hdr [nbdwire.SimpleReplySize]byte
			return c.writeData(w, nbdwire.AppendSimpleReply(hdr[:0], 0, r.Cookie), p)
		})
		return
	}
	segs := []segment{{off: off, n: n}}
	if r.Flags&nbdwire.CmdFlagDF == 0 && n >= sparseReadMin && node.Caps().BlockStatus {
		if s, err := readSegments(node, off, n); err == nil {
			segs = s
		}
	}
	for _, s := range segs {
		if s.hole {
			continue
		}
		if err := node.Pread(p[s.off-off:s.off-off+s.n], s.off); err != nil {
			c.replyErr(r, Errno(err), err.Error())
			return
		}
	}
	c.send(func(w *bufio.Writer) error {
		var hdr [nbdwire.ExtendedReplySize + nbdwire.OffsetHoleSize]byte
		for i, s := range segs {
			flags := uint16(0)
			if i == len(segs)-1 {
				flags = nbdwire.ReplyFlagDone
			}
			if s.hole {
				b := nbdwire.AppendChunkHeader(hdr[:0], c.extended, flags, nbdwire.ReplyTypeOffsetHole, r.Cookie, r.Offset, nbdwire.OffsetHoleSize)
				b = nbdwire.AppendOffsetHole(b, uint64(s.off), uint32(s.n))
				if _, err := w.Write(b); err != nil {
					return err
				}
				continue
			}
			b := nbdwire.AppendChunkHeader(hdr[:0], c.extended, flags, nbdwire.ReplyTypeOffsetData, r.Cookie, r.Offset, uint64(8+s.n))
			b = binary.BigEndian.AppendUint64(b, uint64(s.off))
			if err := c.writeData(w, b, p[s.off-off:s.off-off+s.n]); err != nil {
				return err
			}
		}
		return nil
	})
}

// directWriteMin is the payload size from which writeData bypasses the
// buffered writer.
const directWriteMin = 64 << 10

// writeData writes a reply header and its data. Small data goes through
// w; large data is written straight to the connection together with the
// header (one writev), after flushing w, instead of being copied into w's
// buffer first.
// Preconditions: called from a send build function (c.wmu held).
func (c *conn) writeData(w *bufio.Writer, hdr, data []byte) error {
	if len(data) < directWriteMin {
		w.Write(hdr)
		_, err := w.Write(data)
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	bufs := net.Buffers{hdr, data}
	_, err := bufs.WriteTo(c.nc)
	return err
}

// readDone answers an empty READ.
func (c *conn) readDone(r nbdwire.Request) {
	if !c.structured {
		c.replyOK(r)
		return
	}
	c.send(func(w *bufio.Writer) error {
		_, err := w.Write(nbdwire.AppendChunkHeader(nil, c.extended, nbdwire.ReplyFlagDone, nbdwire.ReplyTypeNone, r.Cookie, r.Offset, 0))
		return err
	})
}

// readsZero reports whether a merged chain extent reads as zeros.
func readsZero(s block.Status) bool { return s&block.Zero != 0 || !s.Present() }

// readSegments splits [off, off+n) into data and hole segments by the
// merged chain status.
func readSegments(node block.Driver, off, n int64) ([]segment, error) {
	var segs []segment
	for pos, end := off, off+n; pos < end; {
		e, err := block.ChainStatus(node, pos, end-pos, nil)
		if err != nil {
			return nil, err
		}
		ln := min(e.Len, end-pos)
		if ln <= 0 {
			return nil, fmt.Errorf("block status returned an empty extent at %d", pos)
		}
		hole := readsZero(e.Status)
		if k := len(segs); k > 0 && segs[k-1].hole == hole {
			segs[k-1].n += ln
		} else {
			segs = append(segs, segment{off: pos, n: ln, hole: hole})
		}
		pos += ln
	}
	return segs, nil
}

// AllocationFlags maps a merged chain extent to base:allocation flags, as
// qemu-nbd does: HOLE when the range has no Data (nothing stored for it),
// ZERO when it reads as zeros.
func AllocationFlags(s block.Status) uint32 {
	var f uint32
	if s&block.Data == 0 {
		f |= nbdwire.StateHole
	}
	if readsZero(s) {
		f |= nbdwire.StateZero
	}
	return f
}

// AllocationDepth maps a merged chain extent to the qemu:allocation-depth
// value: 0 when unallocated in the whole chain, else depth+1.
func AllocationDepth(e block.Extent) uint32 {
	if !e.Status.Present() {
		return 0
	}
	return uint32(e.Depth + 1)
}

// statusList accumulates descriptors for one context, merging equal
// neighbours; with one (REQ_ONE) it stops after the first descriptor.
type statusList struct {
	ds     []nbdwire.Descriptor
	one    bool
	closed bool
}

func (l *statusList) add(n int64, flags uint32) {
	if l.closed {
		return
	}
	if k := len(l.ds); k > 0 && l.ds[k-1].Flags == uint64(flags) {
		l.ds[k-1].Length += uint64(n)
		return
	}
	if l.one && len(l.ds) == 1 {
		l.closed = true
		return
	}
	l.ds = append(l.ds, nbdwire.Descriptor{Length: uint64(n), Flags: uint64(flags)})
}

// blockStatus answers NBD_CMD_BLOCK_STATUS with one chunk per selected
// context, walking the merged chain status once for all of them.
func (c *conn) blockStatus(r nbdwire.Request) {
	node := c.exp.node
	one := r.Flags&nbdwire.CmdFlagReqOne != 0
	lists := make([]statusList, len(c.meta))
	for i := range lists {
		lists[i].one = one
	}
	for pos, end := int64(r.Offset), int64(r.Offset+r.Length); pos < end; {
		e, err := block.ChainStatus(node, pos, end-pos, nil)
		if err != nil {
			c.replyErr(r, Errno(err), err.Error())
			return
		}
		ln := min(e.Len, end-pos)
		if ln <= 0 {
			c.replyErr(r, nbdwire.EIO, fmt.Sprintf("block status returned an empty extent at %d", pos))
			return
		}
		closed, full := true, false
		for i, id := range c.meta {
			v := AllocationFlags(e.Status)
			if id == ctxAllocDepth {
				v = AllocationDepth(e)
			}
			lists[i].add(ln, v)
			closed = closed && lists[i].closed
			full = full || len(lists[i].ds) >= maxStatusDescriptors
		}
		pos += ln
		if (one && closed) || full {
			break
		}
	}
	c.send(func(w *bufio.Writer) error {
		for i, id := range c.meta {
			flags := uint16(0)
			if i == len(c.meta)-1 {
				flags = nbdwire.ReplyFlagDone
			}
			typ := nbdwire.ReplyTypeBlockStatus
			if c.extended {
				typ = nbdwire.ReplyTypeBlockStatusExt
			}
			p := nbdwire.AppendBlockStatus(nil, c.extended, id, lists[i].ds)
			w.Write(nbdwire.AppendChunkHeader(nil, c.extended, flags, typ, r.Cookie, r.Offset, uint64(len(p))))
			if _, err := w.Write(p); err != nil {
				return err
			}
		}
		return nil
	})
}

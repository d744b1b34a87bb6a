package block

import (
	"fmt"
	"sync"
)

// Align returns a node serving requests of any offset and length on d, whose
// Pread and Pwrite need offsets and lengths aligned to a :=
// d.Limits().RequestAlign (a block device, an O_DIRECT file). It returns d
// itself when a <= 1.
//
// Aligned requests pass straight through. An unaligned request is cut into
// a partial head block, an aligned middle and a partial tail block; the
// middle goes to d unchanged (one call, with the caller's buffer), and the
// partial blocks go through a bounce buffer of one block:
//   - Pread reads each partial block whole and copies out the part asked.
//   - Pwrite reads each partial block, patches it and writes it back
//     (read-modify-write), with the caller's FUA.
//   - WriteZeroes zeroes the partial blocks by read-modify-write and passes
//     the aligned middle to d.WriteZeroes with the caller's flags. With
//     NoFallback an unaligned request fails with ErrNotSupported before
//     changing anything, since its partial blocks would be written.
//   - Discard passes the aligned middle down. The partial blocks are zeroed
//     by read-modify-write when d.Caps().DiscardZeroes (the promise covers
//     every byte), and left alone otherwise (a discard is a hint).
//
// The last block of a node whose size is not a multiple of a is shorter; a
// request for it ends at Size and is passed to d as it is.
//
// Concurrency: read-modify-write cycles lock their aligned range, so
// unaligned writes to disjoint bytes of the same block, which the Driver
// contract lets a caller issue in parallel, do not lose each other's
// updates. Aligned requests take no lock. A request spanning several parts
// that fails leaves earlier parts done, like any failed request.
//
// BlockStatus, Flush, Close, Caps and Info pass through. Limits reports
// RequestAlign 1, and DiscardGranularity / DiscardAlignment of at least a
// (partial blocks are zeroed by writing, never deallocated). The node
// implements [Wrapper] and forwards [Backed].
func Align(d Driver) Driver {
	a := d.Limits().RequestAlign
	if a <= 1 {
		return d
	}
	return &alignNode{d: d, align: a, bounce: sync.Pool{New: func() any {
		b := make([]byte, a)
		return &b
	}}}
}

type alignNode struct {
	d      Driver
	align  int64
	bounce sync.Pool  // *[]byte of align bytes
	locks  RangeLocks // guards read-modify-write of partial blocks
}

func (n *alignNode) Unwrap() Driver      { return n.d }
func (n *alignNode) Backing() Driver     { return BackingOf(n.d) }
func (n *alignNode) Size() int64         { return n.d.Size() }
func (n *alignNode) Flush() error        { return n.d.Flush() }
func (n *alignNode) Close() error        { return n.d.Close() }
func (n *alignNode) Caps() Caps          { return n.d.Caps() }
func (n *alignNode) Info() (Info, error) { return n.d.Info() }

func (n *alignNode) BlockStatus(off, length int64) (Extent, error) {
	return n.d.BlockStatus(off, length)
}

func (n *alignNode) Limits() Limits {
	l := n.d.Limits()
	l.RequestAlign = 1
	// Partial blocks are zeroed by writing, so nothing smaller than a block
	// is ever deallocated through this node.
	if l.DiscardGranularity < n.align {
		l.DiscardGranularity = n.align
	}
	if l.DiscardAlignment < n.align {
		l.DiscardAlignment = n.align
	}
	return l
}

// aligned reports whether [off, off+length) can go to d as it is: the
// offset is aligned and the length is aligned or the range ends at Size.
func (n *alignNode) aligned(off, length int64) bool {
	return off%n.align == 0 && (length%n.align == 0 || off+length == n.d.Size())
}

// parts splits [off, off+length) into a partial head block, an aligned
// middle and a partial tail block (each possibly empty; a request within
// one block is all head). The middle ends at Size when the range does.
type parts struct {
	headOff, headLen int64
	midOff, midLen   int64
	tailOff, tailLen int64
}

func (n *alignNode) split(off, length int64) parts {
	var p parts
	end := off + length
	size := n.d.Size()
	if r := off % n.align; r != 0 {
		blockEnd := off - r + n.align
		p.headOff, p.headLen = off, min(end, blockEnd)-off
		off += p.headLen
	}
	if off == end {
		return p
	}
	midEnd := end - end%n.align
	if end == size {
		midEnd = end
	}
	p.midOff, p.midLen = off, midEnd-off
	p.tailOff, p.tailLen = midEnd, end-midEnd
	return p
}

// lockSpan locks the aligned blocks covering [off, off+length).
func (n *alignNode) lockSpan(off, length int64) func() {
	start := off - off%n.align
	end := off + length
	if r := end % n.align; r != 0 {
		end += n.align - r
	}
	h := n.locks.Lock(start, end)
	return func() { n.locks.Unlock(h) }
}

// block returns the bounds of the block holding off, cut at Size.
func (n *alignNode) block(off int64) (start, length int64) {
	start = off - off%n.align
	return start, min(n.align, n.d.Size()-start)
}

func (n *alignNode) getBounce() *[]byte  { return n.bounce.Get().(*[]byte) }
func (n *alignNode) putBounce(b *[]byte) { n.bounce.Put(b) }

// readPartial copies [off, off+len(p)) out of the block holding it.
func (n *alignNode) readPartial(p []byte, off int64) error {
	start, length := n.block(off)
	b := n.getBounce()
	defer n.putBounce(b)
	buf := (*b)[:length]
	if err := n.d.Pread(buf, start); err != nil {
		return err
	}
	copy(p, buf[off-start:])
	return nil
}

// writePartial stores p (or zeros when p is nil and zeroLen > 0) into part
// of one block by read-modify-write. Preconditions: the block is locked.
func (n *alignNode) writePartial(p []byte, zeroLen, off int64, flags Flags) error {
	start, length := n.block(off)
	b := n.getBounce()
	defer n.putBounce(b)
	buf := (*b)[:length]
	if err := n.d.Pread(buf, start); err != nil {
		return err
	}
	if p != nil {
		copy(buf[off-start:], p)
	} else {
		clear(buf[off-start : off-start+zeroLen])
	}
	return n.d.Pwrite(buf, start, flags&FUA)
}

func (n *alignNode) check(op string, off, length int64) error {
	if err := CheckRange(off, length, n.d.Size()); err != nil {
		return &OpError{Op: op, Node: "align", Off: off, Len: length, Err: err}
	}
	return nil
}

func (n *alignNode) Pread(p []byte, off int64) error {
	length := int64(len(p))
	if n.aligned(off, length) {
		return n.d.Pread(p, off)
	}
	if err := n.check("pread", off, length); err != nil {
		return err
	}
	s := n.split(off, length)
	if s.headLen > 0 {
		if err := n.readPartial(p[:s.headLen], s.headOff); err != nil {
			return err
		}
	}
	if s.midLen > 0 {
		i := s.midOff - off
		if err := n.d.Pread(p[i:i+s.midLen], s.midOff); err != nil {
			return err
		}
	}
	if s.tailLen > 0 {
		if err := n.readPartial(p[s.tailOff-off:], s.tailOff); err != nil {
			return err
		}
	}
	return nil
}

func (n *alignNode) Pwrite(p []byte, off int64, flags Flags) error {
	length := int64(len(p))
	if n.aligned(off, length) {
		return n.d.Pwrite(p, off, flags)
	}
	if err := n.check("pwrite", off, length); err != nil {
		return err
	}
	if !n.d.Caps().Write {
		return &OpError{Op: "pwrite", Node: "align", Off: off, Len: length, Err: ErrReadOnly}
	}
	unlock := n.lockSpan(off, length)
	defer unlock()
	s := n.split(off, length)
	if s.headLen > 0 {
		if err := n.writePartial(p[:s.headLen], 0, s.headOff, flags); err != nil {
			return err
		}
	}
	if s.midLen > 0 {
		i := s.midOff - off
		if err := n.d.Pwrite(p[i:i+s.midLen], s.midOff, flags); err != nil {
			return err
		}
	}
	if s.tailLen > 0 {
		if err := n.writePartial(p[s.tailOff-off:], 0, s.tailOff, flags); err != nil {
			return err
		}
	}
	return nil
}

func (n *alignNode) WriteZeroes(off, length int64, flags Flags) error {
	if n.aligned(off, length) {
		return n.d.WriteZeroes(off, length, flags)
	}
	if err := n.check("write-zeroes", off, length); err != nil {
		return err
	}
	if flags.Has(NoFallback) {
		return &OpError{Op: "write-zeroes", Node: "align", Off: off, Len: length,
			Err: fmt.Errorf("unaligned request without fallback: %w", ErrNotSupported)}
	}
	return n.zeroUnaligned(off, length, func(off, length int64) error {
		return n.d.WriteZeroes(off, length, flags)
	}, flags)
}

func (n *alignNode) Discard(off, length int64, flags Flags) error {
	if n.aligned(off, length) {
		return n.d.Discard(off, length, flags)
	}
	if err := n.check("discard", off, length); err != nil {
		return err
	}
	middle := func(off, length int64) error { return n.d.Discard(off, length, flags) }
	if n.d.Caps().DiscardZeroes {
		return n.zeroUnaligned(off, length, middle, 0)
	}
	s := n.split(off, length)
	if s.midLen > 0 {
		return middle(s.midOff, s.midLen)
	}
	return nil
}

// zeroUnaligned zeroes the partial blocks of [off, off+length) by
// read-modify-write (with flags' FUA) and hands the aligned middle to
// middle.
func (n *alignNode) zeroUnaligned(off, length int64, middle func(off, length int64) error, flags Flags) error {
	unlock := n.lockSpan(off, length)
	defer unlock()
	s := n.split(off, length)
	if s.headLen > 0 {
		if err := n.writePartial(nil, s.headLen, s.headOff, flags); err != nil {
			return err
		}
	}
	if s.midLen > 0 {
		if err := middle(s.midOff, s.midLen); err != nil {
			return err
		}
	}
	if s.tailLen > 0 {
		if err := n.writePartial(nil, s.tailLen, s.tailOff, flags); err != nil {
			return err
		}
	}
	return nil
}

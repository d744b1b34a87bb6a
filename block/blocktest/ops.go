package blocktest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/thinblk/thinblk/block"
)

// run performs n random operations. The sequential runner also sends
// out-of-range and zero-length requests, asks for Info and walks backing
// chains; concurrent runners stay inside their range.
func (r *runner) run(n int, sequential bool) error {
	for range n {
		if err := r.one(sequential); err != nil {
			return err
		}
	}
	return nil
}

// one picks and performs a single random operation.
func (r *runner) one(sequential bool) error {
	k := r.rng.IntN(100)
	if !sequential && k >= 88 {
		k = r.rng.IntN(88)
	}
	switch {
	case k < 26:
		return r.opPwrite()
	case k < 46:
		return r.opPread()
	case k < 58:
		return r.opWriteZeroes()
	case k < 68:
		return r.opDiscard()
	case k < 84:
		return r.opBlockStatus()
	case k < 88:
		return r.do("flush", r.opFlush)
	case k < 94:
		return r.opOutOfRange()
	case k < 96:
		return r.opZeroLength()
	case k < 98:
		return r.do("info", r.c.checkInfo)
	default:
		return r.opChainStatus()
	}
}

// flagString renders request flags for the history.
func flagString(f block.Flags) string {
	s := ""
	if f.Has(block.FUA) {
		s += " fua"
	}
	if f.Has(block.MayUnmap) {
		s += " may-unmap"
	}
	if f.Has(block.NoFallback) {
		s += " no-fallback"
	}
	return s
}

// fill fills p with random bytes, or leaves it all zeros (about one write
// in five), or with a sparse pattern (mostly zeros, some data).
func (r *runner) fill(p []byte) string {
	switch k := r.rng.IntN(10); {
	case k < 2:
		clear(p)
		return "zeros"
	case k < 3:
		clear(p)
		for range 1 + len(p)/4096 {
			p[r.rng.IntN(len(p))] = byte(1 + r.rng.IntN(255))
		}
		return "sparse"
	default:
		i := 0
		for ; i+8 <= len(p); i += 8 {
			binary.LittleEndian.PutUint64(p[i:], r.rng.Uint64())
		}
		for ; i < len(p); i++ {
			p[i] = byte(r.rng.Uint32())
		}
		return "random"
	}
}

// memset sets every byte of p to b.
func memset(p []byte, b byte) {
	if len(p) == 0 {
		return
	}
	p[0] = b
	for i := 1; i < len(p); i *= 2 {
		copy(p[i:], p[:i])
	}
}

func (r *runner) opPwrite() error {
	off, n := r.pickRange(r.c.maxRW)
	p := r.scratch(n)
	kind := r.fill(p)
	var flags block.Flags
	if r.rng.IntN(4) == 0 {
		flags |= block.FUA
	}
	return r.do(fmt.Sprintf("pwrite %d+%d %s%s", off, n, kind, flagString(flags)), func() error {
		err := r.c.d.Pwrite(p, off, flags)
		if !r.c.caps.Write {
			return wantErr(err, block.ErrReadOnly, "pwrite on a read-only node")
		}
		if err != nil {
			return err
		}
		r.c.m.write(p, off)
		// The caller owns the buffer: a node that kept it would now change.
		memset(p, 0xEE)
		return r.maybeReadBack(off, n, 2)
	})
}

// maybeReadBack reads back, one time in oneIn, a range just written with
// some bytes either side, so that a lost or misplaced update is caught
// before a later request hides it.
func (r *runner) maybeReadBack(off, n int64, oneIn int) error {
	if r.rng.IntN(oneIn) != 0 {
		return nil
	}
	margin := 2 * max(r.c.align, 512)
	start := max(off-margin, r.lo)
	end := min(off+n+margin, r.hi)
	return r.verifyRange(start, end-start)
}

func (r *runner) opPread() error {
	off, n := r.pickRange(r.c.maxRW)
	return r.do(fmt.Sprintf("pread %d+%d", off, n), func() error {
		p := r.scratch(n)
		memset(p, 0xA5) // a read that does not fill p shows up
		if err := r.c.d.Pread(p, off); err != nil {
			return err
		}
		return r.c.m.verify(p, off)
	})
}

func (r *runner) opWriteZeroes() error {
	off, n := r.pickRange(r.c.maxZero)
	var flags block.Flags
	if r.rng.IntN(2) == 0 {
		flags |= block.MayUnmap
	}
	if r.rng.IntN(4) == 0 {
		flags |= block.NoFallback
	}
	if r.rng.IntN(6) == 0 {
		flags |= block.FUA
	}
	return r.do(fmt.Sprintf("write-zeroes %d+%d%s", off, n, flagString(flags)), func() error {
		err := r.c.d.WriteZeroes(off, n, flags)
		switch {
		case !r.c.caps.Write:
			return wantErr(err, block.ErrReadOnly, "write-zeroes on a read-only node")
		case flags.Has(block.NoFallback) && !r.c.caps.FastZero:
			if err == nil {
				return errors.New("NoFallback succeeded although Caps().FastZero is false")
			}
			if err := wantErr(err, block.ErrNotSupported, "write-zeroes with NoFallback on a node without FastZero"); err != nil {
				return err
			}
			r.c.m.maybeZero(off, n)
			return nil
		case flags.Has(block.NoFallback) && errors.Is(err, block.ErrNotSupported):
			r.c.m.maybeZero(off, n)
			return nil
		case err != nil:
			return err
		}
		r.c.m.zero(off, n)
		if flags.Has(block.MayUnmap) {
			if err := r.checkDeallocated(off, n); err != nil {
				return err
			}
		}
		return r.maybeReadBack(off, n, 3)
	})
}

// checkDeallocated checks the promise of Caps().ZeroUnmap after a
// successful WriteZeroes with MayUnmap: the whole discard granules inside
// the range are deallocated, so BlockStatus reports them Zero (or, on a
// node without backing, unallocated) and never Allocated. Wherever the
// node's granules start, [off+g, off+n-g) lies inside whole granules, so
// that is what is checked (g = Limits().DiscardGranularity). It checks
// nothing when the node does not promise it, does not report status, or
// does not say its granularity.
func (r *runner) checkDeallocated(off, n int64) error {
	g := r.c.lim.DiscardGranularity
	if !r.c.caps.ZeroUnmap || !r.c.caps.BlockStatus || g <= 0 {
		return nil
	}
	start, end := off+g, off+n-g
	for cur := start; cur < end; {
		e, err := r.c.d.BlockStatus(cur, end-cur)
		if err != nil {
			return fmt.Errorf("BlockStatus(%d, %d) after write-zeroes with MayUnmap: %w", cur, end-cur, err)
		}
		if err := r.checkExtent(e, cur, end-cur); err != nil {
			return fmt.Errorf("BlockStatus(%d, %d) after write-zeroes with MayUnmap: %w", cur, end-cur, err)
		}
		zero := e.Status&block.Zero != 0 || (!e.Status.Present() && r.c.backing == nil)
		if !zero || e.Status&block.Allocated != 0 {
			return fmt.Errorf("Caps().ZeroUnmap, but after write-zeroes with MayUnmap BlockStatus(%d, %d) says %s for %d+%d (want zero and not allocated)",
				cur, end-cur, statusString(e.Status), e.Off, e.Len)
		}
		cur = e.End()
	}
	return nil
}

func (r *runner) opDiscard() error {
	off, n := r.pickRange(r.c.maxDiscard)
	return r.do(fmt.Sprintf("discard %d+%d", off, n), func() error {
		err := r.c.d.Discard(off, n, 0)
		switch {
		case !r.c.caps.Write:
			return wantErr(err, block.ErrReadOnly, "discard on a read-only node")
		case err != nil:
			return err
		case !r.c.caps.Discard:
			// Discard does nothing: the content stays.
		case r.c.caps.DiscardZeroes:
			r.c.m.zero(off, n)
		default:
			r.c.m.maybeZero(off, n)
		}
		return r.maybeReadBack(off, n, 3)
	})
}

func (r *runner) opFlush() error {
	return r.c.d.Flush()
}

func (r *runner) opBlockStatus() error {
	a := r.c.align
	off, n := r.pickRange(2 * r.c.maxRW)
	if r.rng.IntN(2) == 0 && n > 1 {
		// BlockStatus needs no alignment: shift the start by a few bytes.
		d := 1 + r.rng.Int64N(min(n-1, 3*a+1))
		off, n = off+d, n-d
	}
	return r.do(fmt.Sprintf("block-status walk %d+%d", off, n), func() error {
		return r.walkStatus(off, n)
	})
}

// opCompareAll reads every byte of the runner's range and checks it.
func (r *runner) opCompareAll() error {
	return r.verifyRange(r.lo, r.hi-r.lo)
}

// verifyRange reads [off, off+n) (aligned outwards, in pieces of at most
// maxRW bytes) and checks it against the model; it returns the bytes of
// [off, off+n).
func (r *runner) readRange(off, n int64) ([]byte, error) {
	a := r.c.align
	start := off - off%a
	end := off + n
	if rem := end % a; rem != 0 {
		end = min(end+a-rem, r.c.size)
	}
	p := make([]byte, end-start)
	err := block.SplitRequest(start, end-start, r.c.maxRW, func(o, c int64) error {
		q := p[o-start : o-start+c]
		if err := r.c.d.Pread(q, o); err != nil {
			return err
		}
		return r.c.m.verify(q, o)
	})
	if err != nil {
		return nil, err
	}
	return p[off-start : off-start+n], nil
}

func (r *runner) verifyRange(off, n int64) error {
	_, err := r.readRange(off, n)
	return err
}

// opOutOfRange sends a request that is out of range (past the end,
// straddling it, negative, or overflowing), expects ErrOutOfRange and checks
// that nothing changed.
func (r *runner) opOutOfRange() error {
	size, a := r.c.size, r.c.align
	var off, n int64
	switch r.rng.IntN(6) {
	case 0: // past the end
		off, n = size+(a-size%a)%a+a*r.rng.Int64N(4), a
	case 1, 2: // straddling the end (the most likely to leave damage)
		n = a * (2 + r.rng.Int64N(4))
		off = max(size-size%a-a, 0)
		if off+n <= size {
			n = size - off + a
		}
	case 3: // negative offset
		off, n = -a, 2*a
	case 4: // overflowing offset+length
		off, n = size-size%a, math.MaxInt64-a+1
	default: // far away
		off, n = math.MaxInt64-math.MaxInt64%a, a
	}
	ops := []string{"pread", "pwrite", "write-zeroes", "discard", "block-status"}
	op := ops[r.rng.IntN(len(ops))]
	if (op == "pread" || op == "pwrite") && n > r.c.maxRW+2*a {
		n = 2 * a // a buffer that size cannot be allocated
		off = size - a
	}
	return r.do(fmt.Sprintf("%s %d+%d (out of range)", op, off, n), func() error {
		var err error
		switch op {
		case "pread":
			err = r.c.d.Pread(make([]byte, n), off)
		case "pwrite":
			p := make([]byte, n)
			memset(p, 0x5A)
			err = r.c.d.Pwrite(p, off, 0)
		case "write-zeroes":
			err = r.c.d.WriteZeroes(off, n, block.MayUnmap)
		case "discard":
			err = r.c.d.Discard(off, n, 0)
		case "block-status":
			var e block.Extent
			e, err = r.c.d.BlockStatus(off, n)
			if err == nil && off >= 0 && off < size {
				// Straddling: a node may answer for the part inside.
				if e.Off != off || e.Len <= 0 || e.End() > size {
					return fmt.Errorf("straddling block status returned %d+%d", e.Off, e.Len)
				}
				return nil
			}
		}
		if err := wantErr(err, block.ErrOutOfRange, op+" out of range"); err != nil {
			return err
		}
		// Nothing may have changed inside the node.
		if off >= 0 && off < size {
			return r.verifyRange(off, size-off)
		}
		return nil
	})
}

// opZeroLength sends a zero-length request at a valid offset: it must
// succeed (or fail with ErrInvalid) and change nothing.
func (r *runner) opZeroLength() error {
	off, _ := r.pickRange(r.c.align)
	ops := []string{"pread", "pwrite", "write-zeroes", "discard"}
	op := ops[r.rng.IntN(len(ops))]
	return r.do(fmt.Sprintf("%s %d+0", op, off), func() error {
		var err error
		switch op {
		case "pread":
			err = r.c.d.Pread(nil, off)
		case "pwrite":
			err = r.c.d.Pwrite([]byte{}, off, 0)
		case "write-zeroes":
			err = r.c.d.WriteZeroes(off, 0, 0)
		case "discard":
			err = r.c.d.Discard(off, 0, 0)
		}
		if err != nil && !errors.Is(err, block.ErrInvalid) &&
			!(op != "pread" && !r.c.caps.Write && errors.Is(err, block.ErrReadOnly)) {
			return fmt.Errorf("zero-length %s: %w", op, err)
		}
		return nil
	})
}

// wantErr checks that err wraps want.
func wantErr(err, want error, what string) error {
	if err == nil {
		return fmt.Errorf("%s succeeded, want an error wrapping %q", what, want)
	}
	if !errors.Is(err, want) {
		return fmt.Errorf("%s: got %q, want an error wrapping %q", what, err, want)
	}
	return nil
}

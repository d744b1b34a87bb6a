package blocktest

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/thinblk/thinblk/block"
)

// walkStatus asks BlockStatus for [off, off+n) repeatedly, as a caller
// mapping the range would, and checks every extent:
//   - it starts where asked, 0 < Len <= what was asked, and ends inside the
//     node, so the extents cover the range without gaps or overlaps;
//   - its status bits are consistent (Allocated or Compressed need Data or
//     Zero; a node without Caps().BlockStatus says Data|Allocated), its
//     HostOffset is -1 or more, and its Depth is 0;
//   - a Zero extent reads as zeros;
//   - an unallocated extent (neither Data nor Zero) reads as zeros when the
//     node has no backing, and as the backing node's bytes when it has one.
//
// Every byte read on the way is also checked against the model.
func (r *runner) walkStatus(off, n int64) error {
	end := off + n
	for cur := off; cur < end; {
		e, err := r.c.d.BlockStatus(cur, end-cur)
		if err != nil {
			return fmt.Errorf("BlockStatus(%d, %d): %w", cur, end-cur, err)
		}
		if err := r.checkExtent(e, cur, end-cur); err != nil {
			return fmt.Errorf("BlockStatus(%d, %d) = {Off %d, Len %d, Status %s, HostOffset %d}: %w",
				cur, end-cur, e.Off, e.Len, statusString(e.Status), e.HostOffset, err)
		}
		cur = e.End()
	}
	return nil
}

func (r *runner) checkExtent(e block.Extent, off, n int64) error {
	if err := r.c.checkExtentShape(e, off, n); err != nil {
		return err
	}
	st := e.Status
	switch {
	case st&block.Zero != 0:
		return r.expectZeros(e.Off, e.Len, "extent claims Zero")
	case !st.Present() && r.c.backing == nil:
		return r.expectZeros(e.Off, e.Len, "unallocated extent of a node without backing")
	case !st.Present():
		return r.expectBacking(e.Off, e.Len)
	}
	return nil
}

// checkExtentShape checks what BlockStatus(off, n) returned without
// looking at content: position, length and consistent status bits.
func (c *checker) checkExtentShape(e block.Extent, off, n int64) error {
	st := e.Status
	switch {
	case e.Off != off:
		return errors.New("extent does not start at the asked offset")
	case e.Len <= 0 || e.Len > n:
		return fmt.Errorf("length not in (0, %d]", n)
	case e.End() > c.size:
		return fmt.Errorf("extent ends past the node's size %d", c.size)
	case e.HostOffset < -1:
		return errors.New("HostOffset below -1")
	case e.Depth != 0:
		return errors.New("a driver leaves Depth 0 (ChainStatus sets it)")
	case st&block.Allocated != 0 && !st.Present():
		return errors.New("Allocated without Data or Zero")
	case st&block.Compressed != 0 && st&block.Data == 0:
		return errors.New("Compressed without Data")
	case !c.caps.BlockStatus && st&(block.Data|block.Zero|block.Allocated) != block.Data|block.Allocated:
		return errors.New("node without Caps().BlockStatus must report Data|Allocated")
	}
	return nil
}

// expectZeros reads [off, off+n) and requires zeros.
func (r *runner) expectZeros(off, n int64, why string) error {
	p, err := r.readRange(off, n)
	if err != nil {
		return fmt.Errorf("%s: %w", why, err)
	}
	if i := bytes.IndexFunc(p, func(c rune) bool { return c != 0 }); i >= 0 {
		return fmt.Errorf("%s, but offset %d reads nonzero", why, off+int64(i))
	}
	return nil
}

// expectBacking reads [off, off+n) of the node and of its backing node
// (zeros past the backing node's end) and requires them to be equal.
func (r *runner) expectBacking(off, n int64) error {
	p, err := r.readRange(off, n)
	if err != nil {
		return fmt.Errorf("unallocated extent: %w", err)
	}
	b := r.c.backing
	q := make([]byte, n)
	if bs := b.Size(); off < bs {
		c := min(n, bs-off)
		err := block.SplitRequest(off, c, b.Limits().MaxTransfer, func(o, c int64) error {
			return b.Pread(q[o-off:o-off+c], o)
		})
		if err != nil {
			return fmt.Errorf("reading the backing node: %w", err)
		}
	}
	if !bytes.Equal(p, q) {
		for i := range p {
			if p[i] != q[i] {
				return fmt.Errorf("unallocated extent, but offset %d reads 0x%02x and the backing node has 0x%02x",
					off+int64(i), p[i], q[i])
			}
		}
	}
	return nil
}

// opChainStatus walks a random range with block.ChainStatus: extents must
// tile the range, with depths within the chain.
func (r *runner) opChainStatus() error {
	off, n := r.pickRange(2 * r.c.maxRW)
	depth := 0
	for b := r.c.backing; b != nil; b = block.BackingOf(b) {
		depth++
	}
	return r.do(fmt.Sprintf("chain-status walk %d+%d", off, n), func() error {
		end := off + n
		for cur := off; cur < end; {
			e, err := block.ChainStatus(r.c.d, cur, end-cur, nil)
			if err != nil {
				return fmt.Errorf("ChainStatus(%d, %d): %w", cur, end-cur, err)
			}
			if e.Off != cur || e.Len <= 0 || e.Len > end-cur || e.Depth < 0 || e.Depth > depth {
				return fmt.Errorf("ChainStatus(%d, %d) = {Off %d, Len %d, Depth %d} with chain depth %d",
					cur, end-cur, e.Off, e.Len, e.Depth, depth)
			}
			if e.Status&block.Zero != 0 {
				if err := r.expectZeros(e.Off, e.Len, fmt.Sprintf("chain extent at depth %d claims Zero", e.Depth)); err != nil {
					return err
				}
			}
			cur = e.End()
		}
		return nil
	})
}

// statusString renders status bits like "data|allocated".
func statusString(s block.Status) string {
	out := ""
	for _, f := range []struct {
		bit  block.Status
		name string
	}{{block.Data, "data"}, {block.Zero, "zero"}, {block.Allocated, "allocated"}, {block.Compressed, "compressed"}} {
		if s&f.bit != 0 {
			if out != "" {
				out += "|"
			}
			out += f.name
		}
	}
	if out == "" {
		return "unallocated"
	}
	return out
}

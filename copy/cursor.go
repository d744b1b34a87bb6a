package copy

import (
	"github.com/thinblk/thinblk/block"
)

// StatusCursor answers block.ChainStatus queries for a walk over a chain
// that does not change meanwhile (a copy's sources, map). It remembers the
// last run each layer reported and answers from it while the walk stays
// inside that run, so a forward walk asks each layer about each of its runs
// once. Plain ChainStatus asks the top layer again for every run found
// below it: a walk under a long unallocated run of the top is quadratic.
//
// A StatusCursor is not safe for concurrent use.
type StatusCursor struct {
	top, base block.Driver
	// last[depth] is the last run the layer at depth reported
	// (Len 0 when none).
	last []block.Extent
}

// NewStatusCursor returns a cursor over top's chain, stopping above base
// (nil walks the whole chain), as block.ChainStatus(top, off, n, base).
func NewStatusCursor(top, base block.Driver) *StatusCursor {
	return &StatusCursor{top: top, base: base}
}

// Status is block.ChainStatus(top, off, n, base): the run from off (at most
// n bytes) as the first layer of the chain that has it present describes
// it, with its depth; or the run unallocated in the whole walked chain.
func (c *StatusCursor) Status(off, n int64) (block.Extent, error) {
	d := c.top
	for depth := 0; ; depth++ {
		e, err := c.layer(depth, d, off, n)
		if err != nil {
			return block.Extent{}, err
		}
		e.Depth = depth
		if e.Status.Present() {
			return e, nil
		}
		b, ok := d.(block.Backed)
		if !ok {
			return e, nil
		}
		next := b.Backing()
		if next == nil || next == c.base {
			return e, nil
		}
		n = e.Len
		if off >= next.Size() {
			return block.Extent{Off: off, Len: n, Status: block.Zero, HostOffset: -1, Depth: depth + 1}, nil
		}
		n = min(n, next.Size()-off)
		d = next
	}
}

// layer returns d's own status at off (at most n bytes), from the
// remembered run when it covers off.
func (c *StatusCursor) layer(depth int, d block.Driver, off, n int64) (block.Extent, error) {
	for len(c.last) <= depth {
		c.last = append(c.last, block.Extent{})
	}
	l := c.last[depth]
	if l.Len > 0 && off >= l.Off && off < l.Off+l.Len {
		delta := off - l.Off
		e := l
		e.Off, e.Len = off, min(l.Len-delta, n)
		if e.HostOffset >= 0 {
			e.HostOffset += delta
		}
		return e, nil
	}
	e, err := d.BlockStatus(off, n)
	if err != nil {
		return block.Extent{}, err
	}
	if e.Off == off && e.Len > 0 {
		c.last[depth] = e
	}
	return e, nil
}

package copy

import (
	"context"

	"github.com/thinblk/thinblk/block"
)

// kind says what a request does with its target range.
type kind uint8

const (
	// kindData: read the sources, write what is not zero (or differs
	// from the backing).
	kindData kind = iota
	// kindZero: the sources read zeros here; make the target read zeros.
	kindZero
	// kindSkip: unallocated above the base; the target's backing provides
	// it, nothing to do.
	kindSkip
)

func (k kind) String() string {
	switch k {
	case kindData:
		return "data"
	case kindZero:
		return "zero"
	}
	return "skip"
}

// item is one request: a range of the target, [off, off+n), and what to do
// with it. seq orders writes.
type item struct {
	seq  int64
	kind kind
	off  int64
	n    int64
}

func (it item) end() int64 { return it.off + it.n }

// layout maps target offsets to the sources laid end to end.
type layout struct {
	srcs   []Source
	starts []int64 // target offset of each source's first byte
	total  int64
}

func newLayout(srcs []Source) layout {
	l := layout{srcs: srcs, starts: make([]int64, len(srcs))}
	for i, s := range srcs {
		l.starts[i] = l.total
		l.total += s.Len
	}
	return l
}

// each calls fn for the pieces of target range [off, off+n) that lie in
// each source: the source index, the source offset and the piece's target
// offset and length.
func (l layout) each(off, n int64, fn func(i int, srcOff, dstOff, n int64) error) error {
	end := off + n
	for i, s := range l.srcs {
		start := l.starts[i]
		sEnd := start + s.Len
		if sEnd <= off || s.Len == 0 {
			continue
		}
		if start >= end {
			break
		}
		a, b := max(off, start), min(end, sEnd)
		if err := fn(i, s.Off+a-start, a, b-a); err != nil {
			return err
		}
	}
	return nil
}

// statusWindow bounds one status query. qcow2 answers in proportion to the
// run it returns, not to the length asked, but other drivers may work in
// proportion to the length; a GiB (the largest item, zeroRequestSize)
// keeps that bounded while a huge hole or zero run still costs one query
// (the planner merges consecutive runs anyway).
const statusWindow = zeroRequestSize

// planner walks the sources' status and cuts it into items.
type planner struct {
	s       *settings
	l       layout
	out     chan<- item
	seq     int64
	pending item
	hasPend bool
	covered int64 // target offset up to which items were already planned
}

// run sends every item in target order on out and closes it. It stops at
// the first status error or when ctx is done.
func (p *planner) run(ctx context.Context) error {
	defer close(p.out)
	for i, src := range p.l.srcs {
		start := p.l.starts[i]
		cur := NewStatusCursor(src.Node, src.Base)
		for pos := int64(0); pos < src.Len; {
			if err := ctx.Err(); err != nil {
				return err
			}
			srcOff := src.Off + pos
			e, err := cur.Status(srcOff, min(src.Len-pos, statusWindow))
			if err != nil {
				return &block.OpError{Op: "block-status", Node: sourceName(src), Off: srcOff, Len: src.Len - pos, Err: err}
			}
			if e.Len <= 0 || e.Off != srcOff {
				return &block.OpError{Op: "block-status", Node: sourceName(src), Off: srcOff, Len: src.Len - pos,
					Err: block.ErrCorrupt}
			}
			n := min(e.Len, src.Len-pos)
			k := kindData
			switch {
			case e.Status&block.Zero != 0:
				k = kindZero
			case e.Status&block.Data != 0:
			case src.Base != nil:
				k = kindSkip
			default:
				k = kindZero // unallocated in the whole chain reads zeros
			}
			if err := p.emit(ctx, k, start+pos, n); err != nil {
				return err
			}
			pos += n
		}
	}
	return p.flush(ctx)
}

func sourceName(s Source) string {
	if s.Name == "" {
		return "source"
	}
	return s.Name
}

// emit plans target range [off, off+n) of kind k. When the target has
// clusters, every target cluster belongs to one item whole: data ranges
// grow to whole clusters, and the partial clusters at the ends of a zero or
// skipped range are read as data (as qemu-img convert aligns its requests).
// Compress mode needs this (a compressed cluster is written whole); for
// other targets it turns a data extent that ends inside a cluster into one
// whole-cluster write instead of a partial write now and a second write
// into the same cluster for the next extent.
func (p *planner) emit(ctx context.Context, k kind, off, n int64) error {
	end := off + n
	if p.s.cluster <= 1 {
		return p.add(ctx, k, off, end)
	}
	c, total := p.s.cluster, p.l.total
	outer := func(a, b int64) (int64, int64) { return roundDown(a, c), min(roundUp(b, c), total) }
	if k == kindData {
		return p.add(ctx, kindData, roundDown(off, c), min(roundUp(end, c), total))
	}
	a, b := roundUp(off, c), roundDown(end, c)
	if end == total {
		b = end
	}
	if a >= b {
		x, y := outer(off, end)
		return p.add(ctx, kindData, x, y)
	}
	if a > off {
		if err := p.add(ctx, kindData, roundDown(off, c), a); err != nil {
			return err
		}
	}
	if err := p.add(ctx, k, a, b); err != nil {
		return err
	}
	if b < end {
		x, y := outer(b, end)
		return p.add(ctx, kindData, x, y)
	}
	return nil
}

// add plans target range [off, end) of kind k, minus what earlier items
// already cover, merging it with the pending item when they touch and
// cutting items at request boundaries.
func (p *planner) add(ctx context.Context, k kind, off, end int64) error {
	off = max(off, p.covered)
	if off >= end {
		return nil
	}
	p.covered = end
	limit := p.s.request
	if k != kindData {
		limit = zeroRequestSize
	}
	for off < end {
		if p.hasPend && (p.pending.kind != k || p.pending.end() != off) {
			if err := p.flush(ctx); err != nil {
				return err
			}
		}
		if !p.hasPend {
			p.pending = item{kind: k, off: off}
			p.hasPend = true
		}
		// An item ends at the first multiple of limit after its start.
		boundary := roundDown(p.pending.off, limit) + limit
		stop := min(end, boundary)
		p.pending.n = stop - p.pending.off
		off = stop
		if stop == boundary {
			if err := p.flush(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// flush sends the pending item, if any.
func (p *planner) flush(ctx context.Context) error {
	if !p.hasPend {
		return nil
	}
	p.hasPend = false
	it := p.pending
	it.seq = p.seq
	p.seq++
	select {
	case p.out <- it:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

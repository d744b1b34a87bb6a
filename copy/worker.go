package copy

import (
	"github.com/thinblk/thinblk/block"
)

// worker runs items with buffers it keeps for the whole copy.
type worker struct {
	e    *engine
	buf  []byte // source data, DefaultRequestSize-ish
	bbuf []byte // backing data (Options.Backing only)
}

// do runs one item: reads, zero detection and writes.
func (w *worker) do(it item) error {
	e := w.e
	switch it.kind {
	case kindSkip:
		e.res.scannedItem(it, nil) // nothing written here
		// Still take the turn: the next item's writes wait for it.
		return e.write(it.seq, func() error {
			e.stats.skipped.Add(it.n)
			return nil
		})
	case kindZero:
		var written []run // zeroed without writing data...
		if e.s.fullyAlloc {
			written = wholeItem(it) // ...unless written as zero bytes
		}
		e.res.scannedItem(it, written)
		return e.write(it.seq, func() error {
			e.res.reserve(it, written)
			return w.zero(it.off, it.n)
		})
	}
	if int64(cap(w.buf)) < it.n {
		w.buf = make([]byte, e.s.request)
	}
	buf := w.buf[:it.n]
	if err := w.read(buf, it.off); err != nil {
		return err
	}
	if e.s.fullyAlloc {
		all := wholeItem(it)
		e.res.scannedItem(it, all)
		return e.write(it.seq, func() error {
			e.res.reserve(it, all)
			return w.pwrite(buf, it.off)
		})
	}
	var back []byte
	if e.s.Backing != nil {
		if int64(cap(w.bbuf)) < it.n {
			w.bbuf = make([]byte, e.s.request)
		}
		back = w.bbuf[:it.n]
		if err := w.readBacking(back, it.off); err != nil {
			return err
		}
	}
	runs := w.scan(buf, back, it.off)
	e.res.scannedItem(it, runs)
	return e.write(it.seq, func() error {
		e.res.reserve(it, runs)
		for _, r := range runs {
			p := buf[r.a-it.off : r.b-it.off]
			var err error
			switch r.k {
			case runData:
				err = w.pwrite(p, r.a)
			case runZero:
				err = w.zero(r.a, r.b-r.a)
			case runSame:
				e.stats.skipped.Add(r.b - r.a)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// wholeItem is the item as one data run: what a fully allocating copy
// writes.
func wholeItem(it item) []run { return []run{{a: it.off, b: it.end(), k: runData}} }

// read fills buf with the sources' bytes for target offset off.
func (w *worker) read(buf []byte, off int64) error {
	e := w.e
	return e.l.each(off, int64(len(buf)), func(i int, srcOff, dstOff, n int64) error {
		src := e.l.srcs[i]
		p := buf[dstOff-off : dstOff-off+n]
		if err := src.Node.Pread(p, srcOff); err != nil {
			return &block.OpError{Op: "read", Node: sourceName(src), Off: srcOff, Len: n, Err: err}
		}
		e.stats.read.Add(n)
		return nil
	})
}

// readBacking fills buf with what Options.Backing reads at off (zeros past
// its end).
func (w *worker) readBacking(buf []byte, off int64) error {
	b := w.e.s.Backing
	n := min(int64(len(buf)), max(b.Size()-off, 0))
	if n > 0 {
		if err := b.Pread(buf[:n], off); err != nil {
			return &block.OpError{Op: "read", Node: "backing", Off: off, Len: n, Err: err}
		}
		w.e.stats.read.Add(n)
	}
	clear(buf[n:])
	return nil
}

// pwrite writes p at off, compressed cluster by cluster in compress mode.
func (w *worker) pwrite(p []byte, off int64) error {
	e := w.e
	if c := e.s.compressor; c != nil {
		cs := e.s.cluster
		for i := int64(0); i < int64(len(p)); i += cs {
			q := p[i:min(i+cs, int64(len(p)))]
			if err := c.PwriteCompressed(q, off+i); err != nil {
				return &block.OpError{Op: "write-compressed", Node: e.s.targetName, Off: off + i, Len: int64(len(q)), Err: err}
			}
		}
	} else if err := e.dst.Pwrite(p, off, 0); err != nil {
		return &block.OpError{Op: "write", Node: e.s.targetName, Off: off, Len: int64(len(p)), Err: err}
	}
	e.stats.written.Add(int64(len(p)))
	return nil
}

// zero makes target range [off, off+n) read as zeros in the cheapest way
// the options allow.
func (w *worker) zero(off, n int64) error {
	e := w.e
	switch {
	case e.s.fullyAlloc:
		return w.writeZeroBytes(off, n)
	case e.s.Backing != nil:
		return w.zeroOverBacking(off, n)
	case e.s.TargetIsZero:
		e.stats.skipped.Add(n)
		return nil
	}
	return w.zeroRange(off, n)
}

func (w *worker) zeroRange(off, n int64) error {
	e := w.e
	if err := block.ZeroRange(e.dst, off, n, block.MayUnmap); err != nil {
		return &block.OpError{Op: "write-zeroes", Node: e.s.targetName, Off: off, Len: n, Err: err}
	}
	e.stats.zeroed.Add(n)
	return nil
}

// writeZeroBytes writes zero bytes (fully allocated output), in pieces of
// whole clusters when compressing.
func (w *worker) writeZeroBytes(off, n int64) error {
	chunk := int64(1 << 20)
	if mt := w.e.dst.Limits().MaxTransfer; mt > 0 && mt < chunk {
		chunk = mt
	}
	zeros := func(c int64) []byte { return block.ZeroBuffer(int(c)) }
	if cs := w.e.s.cluster; w.e.s.compressor != nil {
		chunk = max(chunk-chunk%cs, cs)
		if chunk > 1<<20 {
			buf := make([]byte, chunk)
			zeros = func(c int64) []byte { return buf[:c] }
		}
	}
	for n > 0 {
		c := min(n, chunk)
		if err := w.pwrite(zeros(c), off); err != nil {
			return err
		}
		off += c
		n -= c
	}
	return nil
}

// zeroOverBacking zeroes the parts of [off, off+n) where the target's
// backing does not read zeros already, and skips the rest.
func (w *worker) zeroOverBacking(off, n int64) error {
	e := w.e
	b := e.s.Backing
	end := off + n
	for off < end {
		if off >= b.Size() {
			e.stats.skipped.Add(end - off)
			return nil
		}
		ext, err := block.ChainStatus(b, off, min(end, b.Size(), off+statusWindow)-off, nil)
		if err != nil {
			return &block.OpError{Op: "block-status", Node: "backing", Off: off, Len: end - off, Err: err}
		}
		l := min(ext.Len, end-off)
		if l <= 0 {
			return &block.OpError{Op: "block-status", Node: "backing", Off: off, Len: end - off, Err: block.ErrCorrupt}
		}
		if ext.Status&block.Zero != 0 || !ext.Status.Present() {
			e.stats.skipped.Add(l)
		} else if err := w.zeroRange(off, l); err != nil {
			return err
		}
		off += l
	}
	return nil
}

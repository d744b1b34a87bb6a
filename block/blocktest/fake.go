package blocktest

import (
	"fmt"
	"sync"

	"github.com/thinblk/thinblk/block"
)

// FakeOptions configure a [Fake].
type FakeOptions struct {
	// Size is the virtual size in bytes.
	Size int64
	// Granule is the allocation unit (default 4096). Status is tracked per
	// granule; the last one may be short.
	Granule int64
	// Caps is what the fake advertises, and its behaviour follows it:
	//   - !Write: every mutating call fails with ErrReadOnly.
	//   - !Discard: Discard does nothing. Discard && DiscardZeroes: whole
	//     granules become deallocated zeros and partial ones are zero-filled.
	//     Discard && !DiscardZeroes: of the whole granules, every other one
	//     (by index) becomes deallocated zeros and the rest keep their data,
	//     like a device that discards only some of what it is asked to.
	//   - !WriteZeroes: WriteZeroes writes zero bytes (NoFallback fails with
	//     ErrNotSupported). WriteZeroes: whole granules become anchored
	//     zeros, or deallocated zeros with MayUnmap when ZeroUnmap; partial
	//     ones are zero-filled; NoFallback fails unless FastZero.
	//   - !BlockStatus: BlockStatus says Data|Allocated for everything.
	Caps block.Caps
	// Limits are advertised and enforced: unaligned Pread/Pwrite (except a
	// range ending at Size) and requests over MaxTransfer, MaxDiscard or
	// MaxWriteZeroes fail with ErrInvalid. A DiscardGranularity of 0 is
	// advertised as Granule.
	Limits block.Limits
	// Backing, when set, makes the fake an overlay: unallocated granules
	// read from it (zeros past its size) and BlockStatus reports them as
	// neither Data nor Zero. The fake does not own it.
	Backing block.Driver
}

// FullCaps are the capabilities of a thin, byte-addressable node that does
// everything natively.
var FullCaps = block.Caps{Write: true, Flush: true, FUA: true, Discard: true,
	DiscardZeroes: true, WriteZeroes: true, FastZero: true, ZeroUnmap: true,
	BlockStatus: true}

// Fake is a small, obviously correct in-memory node for tests: of the block
// helpers, of filters, of the conformance suite itself (wrap it to inject
// bugs), and of code that needs a node with particular Caps, Limits or a
// backing node. It serializes every call with one mutex. Counters of calls
// are in the filter/count package; Fake only counts flushes.
type Fake struct {
	o FakeOptions

	mu      sync.RWMutex // guards everything below
	data    []byte       // content of allocated (data) granules
	state   []granuleState
	flushes int
	closed  bool
}

type granuleState uint8

const (
	unallocated  granuleState = iota // defers to backing (zeros without one)
	zeroDealloc                      // reads zeros, no storage
	zeroAnchored                     // reads zeros, storage reserved
	dataAlloc                        // reads data[...]
)

// NewFake returns a fake of o.Size bytes, entirely unallocated.
func NewFake(o FakeOptions) *Fake {
	if o.Granule <= 0 {
		o.Granule = 4096
	}
	if o.Limits.DiscardGranularity == 0 {
		o.Limits.DiscardGranularity = o.Granule
	}
	n := (o.Size + o.Granule - 1) / o.Granule
	return &Fake{o: o, data: make([]byte, o.Size), state: make([]granuleState, n)}
}

// Flushes returns how many times Flush (or a FUA write) was called.
func (f *Fake) Flushes() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.flushes
}

func (f *Fake) Size() int64          { return f.o.Size }
func (f *Fake) Caps() block.Caps     { return f.o.Caps }
func (f *Fake) Limits() block.Limits { return f.o.Limits }

// Backing returns the backing node, or nil.
func (f *Fake) Backing() block.Driver { return f.o.Backing }

func (f *Fake) fail(op string, off, n int64, err error) error {
	return &block.OpError{Op: op, Node: "fake", Off: off, Len: n, Err: err}
}

// validateLocked checks a request against closing, range, write
// permission, alignment and a size limit (0 = none).
// Preconditions: f.mu held.
func (f *Fake) validateLocked(op string, off, n int64, write, aligned bool, max int64) error {
	if f.closed {
		return f.fail(op, off, n, block.ErrClosed)
	}
	if err := block.CheckRange(off, n, f.o.Size); err != nil {
		return f.fail(op, off, n, err)
	}
	if write && !f.o.Caps.Write {
		return f.fail(op, off, n, block.ErrReadOnly)
	}
	if a := f.o.Limits.RequestAlign; aligned && a > 1 {
		if off%a != 0 || (n%a != 0 && off+n != f.o.Size) {
			return f.fail(op, off, n, fmt.Errorf("%w: not aligned to %d", block.ErrInvalid, a))
		}
	}
	if max > 0 && n > max {
		return f.fail(op, off, n, fmt.Errorf("%w: longer than %d", block.ErrInvalid, max))
	}
	return nil
}

// readLocked fills p from off as a reader would see it.
// Preconditions: f.mu held.
func (f *Fake) readLocked(p []byte, off int64) error {
	for len(p) > 0 {
		g := off / f.o.Granule
		gEnd := min((g+1)*f.o.Granule, f.o.Size)
		c := min(int64(len(p)), gEnd-off)
		switch f.state[g] {
		case dataAlloc:
			copy(p[:c], f.data[off:off+c])
		case unallocated:
			if err := f.readBacking(p[:c], off); err != nil {
				return err
			}
		default:
			clear(p[:c])
		}
		p = p[c:]
		off += c
	}
	return nil
}

// readBacking reads from the backing node, with zeros past its end (or for
// all of p without one).
func (f *Fake) readBacking(p []byte, off int64) error {
	clear(p)
	b := f.o.Backing
	if b == nil || off >= b.Size() {
		return nil
	}
	c := min(int64(len(p)), b.Size()-off)
	return block.SplitRequest(off, c, b.Limits().MaxTransfer, func(o, n int64) error {
		return b.Pread(p[o-off:o-off+n], o)
	})
}

// writeLocked stores p at off, allocating granules (copying a partially
// written granule's old content first). Preconditions: f.mu held for
// writing.
func (f *Fake) writeLocked(p []byte, off int64) error {
	for len(p) > 0 {
		g := off / f.o.Granule
		gStart := g * f.o.Granule
		gEnd := min(gStart+f.o.Granule, f.o.Size)
		c := min(int64(len(p)), gEnd-off)
		if f.state[g] != dataAlloc && c < gEnd-gStart {
			if err := f.readLocked(f.data[gStart:gEnd], gStart); err != nil {
				return err
			}
		}
		f.state[g] = dataAlloc
		copy(f.data[off:off+c], p[:c])
		p = p[c:]
		off += c
	}
	return nil
}

// zeroLocked makes [off, off+n) read as zeros: whole granules get state
// whole (or keep theirs when keep(g) says so), partial ones are
// zero-filled. Preconditions: f.mu held for writing.
func (f *Fake) zeroLocked(off, n int64, whole granuleState, keep func(g int64) bool) error {
	end := off + n
	for off < end {
		g := off / f.o.Granule
		gStart := g * f.o.Granule
		gEnd := min(gStart+f.o.Granule, f.o.Size)
		c := min(end, gEnd) - off
		if c == gEnd-gStart {
			if keep == nil || !keep(g) {
				f.state[g] = whole
			}
		} else if keep == nil {
			if err := f.writeLocked(block.ZeroBuffer(int(c)), off); err != nil {
				return err
			}
		}
		off += c
	}
	return nil
}

func (f *Fake) Pread(p []byte, off int64) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n := int64(len(p))
	if err := f.validateLocked("pread", off, n, false, true, f.o.Limits.MaxTransfer); err != nil {
		return err
	}
	return f.readLocked(p, off)
}

func (f *Fake) Pwrite(p []byte, off int64, flags block.Flags) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := int64(len(p))
	if err := f.validateLocked("pwrite", off, n, true, true, f.o.Limits.MaxTransfer); err != nil {
		return err
	}
	if flags.Has(block.FUA) {
		f.flushes++
	}
	return f.writeLocked(p, off)
}

func (f *Fake) WriteZeroes(off, n int64, flags block.Flags) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.validateLocked("write-zeroes", off, n, true, false, f.o.Limits.MaxWriteZeroes); err != nil {
		return err
	}
	c := f.o.Caps
	if flags.Has(block.NoFallback) && !c.FastZero {
		return f.fail("write-zeroes", off, n, block.ErrNotSupported)
	}
	if flags.Has(block.FUA) {
		f.flushes++
	}
	if !c.WriteZeroes {
		return block.SplitRequest(off, n, 1<<20, func(o, c int64) error {
			return f.writeLocked(block.ZeroBuffer(int(c)), o)
		})
	}
	whole := zeroAnchored
	if flags.Has(block.MayUnmap) && c.ZeroUnmap {
		whole = zeroDealloc
	}
	return f.zeroLocked(off, n, whole, nil)
}

func (f *Fake) Discard(off, n int64, flags block.Flags) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.validateLocked("discard", off, n, true, false, f.o.Limits.MaxDiscard); err != nil {
		return err
	}
	c := f.o.Caps
	switch {
	case !c.Discard:
		return nil
	case c.DiscardZeroes:
		return f.zeroLocked(off, n, zeroDealloc, nil)
	default:
		return f.zeroLocked(off, n, zeroDealloc, func(g int64) bool { return g%2 == 1 })
	}
}

func (f *Fake) BlockStatus(off, n int64) (block.Extent, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if err := f.validateLocked("block-status", off, n, false, false, 0); err != nil {
		return block.Extent{}, err
	}
	if n == 0 {
		return block.Extent{}, f.fail("block-status", off, n, fmt.Errorf("%w: zero length", block.ErrInvalid))
	}
	if !f.o.Caps.BlockStatus {
		return block.Extent{Off: off, Len: n, Status: block.Data | block.Allocated, HostOffset: off}, nil
	}
	g := off / f.o.Granule
	st := f.state[g]
	end := off + n
	cur := min((g+1)*f.o.Granule, f.o.Size)
	for cur < end && f.state[cur/f.o.Granule] == st {
		cur = min(cur+f.o.Granule, f.o.Size)
	}
	e := block.Extent{Off: off, Len: min(cur, end) - off, HostOffset: -1}
	switch st {
	case dataAlloc:
		e.Status, e.HostOffset = block.Data|block.Allocated, off
	case zeroAnchored:
		e.Status, e.HostOffset = block.Zero|block.Allocated, off
	case zeroDealloc:
		e.Status = block.Zero
	}
	return e, nil
}

func (f *Fake) Flush() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return f.fail("flush", 0, 0, block.ErrClosed)
	}
	f.flushes++
	return nil
}

// Close marks the fake closed; later calls fail with ErrClosed. It does not
// close the backing node.
func (f *Fake) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

// Reopen returns a new, open fake with the same options and content, as if
// the node were closed and opened again (for Options.Reopen).
func (f *Fake) Reopen() *Fake {
	f.mu.RLock()
	defer f.mu.RUnlock()
	g := &Fake{o: f.o, data: append([]byte(nil), f.data...), state: append([]granuleState(nil), f.state...)}
	return g
}

func (f *Fake) Info() (block.Info, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var alloc, mark int64
	for g, st := range f.state {
		if st == dataAlloc || st == zeroAnchored {
			end := min(int64(g+1)*f.o.Granule, f.o.Size)
			alloc += end - int64(g)*f.o.Granule
			mark = end
		}
	}
	return block.Info{
		Format:               "fake",
		VirtualSize:          f.o.Size,
		AllocatedBytes:       alloc,
		Watermark:            mark,
		UnallocatedReadsZero: f.o.Backing == nil,
		ZeroUnmapDeallocates: f.o.Caps.ZeroUnmap,
	}, nil
}

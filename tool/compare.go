package tool

import (
	"bytes"
	"fmt"
	"io"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
)

// CompareOptions are the flags of `thinblk compare`.
type CompareOptions struct {
	// FormatA (-f) and FormatB (-F) are the images' formats; "" probes.
	FormatA, FormatB string
	// Strict (-s) also fails on different sizes and on a range whose
	// status differs: data in one image and a hole or zeros in the other,
	// or allocated in one chain and not in the other.
	Strict bool
	// Quiet (-q) prints nothing; the exit code tells.
	Quiet bool
	// Cache (-T) is the cache mode of both images.
	Cache string
	// ForceShare (-U) opens the images although another process writes
	// them: no permission is refused to others (see image.Options).
	ForceShare bool
}

// compareChunk is the size of one read while comparing.
const compareChunk = 2 << 20

// statusWindow bounds one status query: drivers may work in proportion to
// the length asked (qcow2 decodes the L2 entries of the range).
const statusWindow = 64 << 20

// compareSector is the unit in which qemu-img compare reports offsets.
const compareSector = 512

// Compare compares the guest-visible content of images a and b (each
// merged down its backing chain), as qemu-img compare does, reading only
// ranges that the status of at least one of them says hold data. It prints
// "Images are identical." and returns nil, or prints
// "Content mismatch at offset N!" (N is the start of the first differing
// 512-byte sector) and returns an *ExitError with code 1. Errors are
// *ExitError with code 2. Images of different sizes are identical when the
// extra part of the larger one reads as zeros, except in strict mode.
func Compare(w io.Writer, a, b string, o CompareOptions) error {
	say := func(format string, args ...any) {
		if !o.Quiet {
			fmt.Fprintf(w, format+"\n", args...)
		}
	}
	fail := func(err error) error { return &ExitError{Code: 2, Err: err} }
	da, err := image.Open(a, image.Options{Format: o.FormatA, ReadOnly: true, Cache: o.Cache, ForceShare: o.ForceShare})
	if err != nil {
		return fail(err)
	}
	defer da.Close()
	db, err := image.Open(b, image.Options{Format: o.FormatB, ReadOnly: true, Cache: o.Cache, ForceShare: o.ForceShare})
	if err != nil {
		return fail(err)
	}
	defer db.Close()

	if da.Size() != db.Size() && o.Strict {
		say("Strict mode: Image size mismatch!")
		return &ExitError{Code: 1}
	}
	c := comparer{a: da, b: db, nameA: a, nameB: b, strict: o.Strict,
		bufA: make([]byte, compareChunk), bufB: make([]byte, compareChunk)}
	common := min(da.Size(), db.Size())
	mismatch, err := c.compare(0, common)
	if err == nil && mismatch < 0 && da.Size() != db.Size() {
		say("Warning: Image size mismatch!")
		// The larger image must read zeros past the smaller one's end.
		bigger, name := da, a
		if db.Size() > da.Size() {
			bigger, name = db, b
		}
		mismatch, err = c.checkZero(bigger, name, common, bigger.Size()-common)
	}
	if err != nil {
		return fail(err)
	}
	if c.statusMismatch {
		say("Strict mode: Offset %d block status mismatch!", mismatch)
		return &ExitError{Code: 1}
	}
	if mismatch >= 0 {
		say("Content mismatch at offset %d!", mismatch)
		return &ExitError{Code: 1}
	}
	say("Images are identical.")
	return nil
}

type comparer struct {
	a, b           block.Driver
	nameA, nameB   string
	strict         bool
	bufA, bufB     []byte
	statusMismatch bool // the mismatch found is one of allocation (strict)
}

// readsZero reports whether a chain status says the run reads as zeros.
func readsZero(e block.Extent) bool {
	return e.Status&block.Zero != 0 || !e.Status.Present()
}

// strictStatus is what strict mode compares: data, zero, and (through
// Present) whether the chain describes the run at all. qemu-img compare -s
// also compares its BDRV_BLOCK_EOF bit, so it calls two holes different
// when only one of them reaches the end of its image; thinblk does not, and
// may report a later offset than qemu-img for such pairs.
func strictStatus(s block.Status) block.Status {
	return s & (block.Data | block.Zero)
}

// compare compares [off, off+n) of both images; it returns the offset of
// the first mismatch or -1.
func (c *comparer) compare(off, n int64) (int64, error) {
	end := off + n
	for off < end {
		ea, err := block.ChainStatus(c.a, off, min(end-off, statusWindow), nil)
		if err != nil {
			return 0, &block.OpError{Op: "block-status", Node: c.nameA, Off: off, Len: end - off, Err: err}
		}
		eb, err := block.ChainStatus(c.b, off, min(ea.Len, end-off), nil)
		if err != nil {
			return 0, &block.OpError{Op: "block-status", Node: c.nameB, Off: off, Len: end - off, Err: err}
		}
		run := min(ea.Len, eb.Len, end-off)
		if run <= 0 {
			return 0, &block.OpError{Op: "block-status", Node: c.nameA, Off: off, Len: end - off, Err: block.ErrCorrupt}
		}
		if c.strict && strictStatus(ea.Status) != strictStatus(eb.Status) {
			c.statusMismatch = true
			return off, nil
		}
		za, zb := readsZero(ea), readsZero(eb)
		var at int64 = -1
		switch {
		case za && zb:
		case za:
			at, err = c.checkZero(c.b, c.nameB, off, run)
		case zb:
			at, err = c.checkZero(c.a, c.nameA, off, run)
		default:
			at, err = c.compareData(off, run)
		}
		if err != nil || at >= 0 {
			return at, err
		}
		off += run
	}
	return -1, nil
}

// checkZero returns the first non-zero sector of [off, off+n) of d, or -1.
// Ranges d's status calls zero are not read.
func (c *comparer) checkZero(d block.Driver, name string, off, n int64) (int64, error) {
	end := off + n
	for off < end {
		e, err := block.ChainStatus(d, off, min(end-off, statusWindow), nil)
		if err != nil {
			return 0, &block.OpError{Op: "block-status", Node: name, Off: off, Len: end - off, Err: err}
		}
		run := min(e.Len, end-off)
		if run <= 0 {
			return 0, &block.OpError{Op: "block-status", Node: name, Off: off, Len: end - off, Err: block.ErrCorrupt}
		}
		if !readsZero(e) {
			for pos := off; pos < off+run; {
				k := min(int64(len(c.bufA)), off+run-pos)
				p := c.bufA[:k]
				if err := d.Pread(p, pos); err != nil {
					return 0, &block.OpError{Op: "read", Node: name, Off: pos, Len: k, Err: err}
				}
				if !block.IsZero(p) {
					for i := range p {
						if p[i] != 0 {
							return sectorOf(pos + int64(i)), nil
						}
					}
				}
				pos += k
			}
		}
		off += run
	}
	return -1, nil
}

// compareData reads [off, off+n) of both images (in parallel, chunk by
// chunk) and returns the first differing sector, or -1.
func (c *comparer) compareData(off, n int64) (int64, error) {
	for pos := off; pos < off+n; {
		k := min(int64(len(c.bufA)), off+n-pos)
		pa, pb := c.bufA[:k], c.bufB[:k]
		errB := make(chan error, 1)
		go func() { errB <- c.b.Pread(pb, pos) }()
		errA := c.a.Pread(pa, pos)
		eb := <-errB
		if errA != nil {
			return 0, &block.OpError{Op: "read", Node: c.nameA, Off: pos, Len: k, Err: errA}
		}
		if eb != nil {
			return 0, &block.OpError{Op: "read", Node: c.nameB, Off: pos, Len: k, Err: eb}
		}
		if !bytes.Equal(pa, pb) {
			for i := range pa {
				if pa[i] != pb[i] {
					return sectorOf(pos + int64(i)), nil
				}
			}
		}
		pos += k
	}
	return -1, nil
}

func sectorOf(off int64) int64 { return off - off%compareSector }

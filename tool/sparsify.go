package tool

import (
	"errors"
	"fmt"
	"io"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
)

// SparsifyOptions are the flags of `thinblk sparsify`.
type SparsifyOptions struct {
	// Format (-f) is the image's format; "" probes.
	Format string
	// InPlace deallocates zero ranges of the image itself; otherwise the
	// image is copied, compacted, to the output (convert to the same
	// format).
	InPlace bool
	// OutFormat (-O) is the copy's format ("" = the input's); Compress
	// (--compress) writes compressed clusters in copy mode.
	OutFormat string
	Compress  bool
	// Quiet (-q) suppresses the summary line.
	Quiet bool
}

// sparsifyChunk is how much is read at a time in place.
const sparsifyChunk = 2 << 20

// SparsifyResult says what an in-place sparsify did.
type SparsifyResult struct {
	// Scanned is how many allocated bytes were read; Zeroed how many of
	// them read as zeros and were deallocated.
	Scanned, Zeroed int64
	// Before and After are the image's allocated bytes on the host
	// (Info().AllocatedBytes), -1 when unknown.
	Before, After int64
}

// Sparsify finds the ranges of name that hold data reading all zeros and
// deallocates them (write-zeroes with unmap: a hole in a raw file; a freed
// cluster, or a zero cluster over a backing file, in qcow2), then prints
// "sparsify: N bytes of zeros deallocated, M bytes reclaimed" to w. Only
// the top image is touched; what it reads does not change. In copy mode
// (not InPlace) it converts name to out instead, which drops zeros too.
func Sparsify(w io.Writer, name, out string, o SparsifyOptions) error {
	if !o.InPlace {
		if out == "" {
			return errors.New("sparsify: give an output image, or --in-place")
		}
		format := o.OutFormat
		if format == "" {
			in, err := image.Open(name, image.Options{Format: o.Format, ReadOnly: true, NoBacking: true})
			if err != nil {
				return err
			}
			info, err := in.Info()
			in.Close()
			if err != nil {
				return &block.OpError{Op: "info", Node: name, Err: err}
			}
			format = info.Format
		}
		return Convert(w, io.Discard, []string{name}, out, ConvertOptions{SrcFormat: o.Format, OutFormat: format,
			Compress: o.Compress, SparseSize: -1})
	}
	if out != "" {
		return errors.New("sparsify: --in-place takes one image")
	}
	r, err := SparsifyInPlace(name, o.Format)
	if err != nil {
		return err
	}
	if !o.Quiet {
		reclaimed := "unknown"
		if r.Before >= 0 && r.After >= 0 {
			reclaimed = fmt.Sprintf("%d", r.Before-r.After)
		}
		fmt.Fprintf(w, "sparsify: %d bytes of zeros deallocated, %s bytes reclaimed\n", r.Zeroed, reclaimed)
	}
	return nil
}

// SparsifyInPlace is Sparsify's in-place work: it reads every range the
// top image stores as data, in chunks, and turns each run of zeros that
// covers whole allocation units (the cluster size, or 4 KiB) into
// WriteZeroes with MayUnmap. On error the image reads the same as before;
// some zeros may already be deallocated.
func SparsifyInPlace(name, format string) (SparsifyResult, error) {
	r := SparsifyResult{Before: -1, After: -1}
	d, err := image.Open(name, image.Options{Format: format, Discard: "unmap"})
	if err != nil {
		return r, err
	}
	defer d.Close()
	if info, err := d.Info(); err == nil {
		r.Before = info.AllocatedBytes
	}
	unit := int64(4096)
	if cs, ok := block.As[image.ClusterSizer](d); ok && cs.ClusterSize() > unit {
		unit = cs.ClusterSize()
	}
	buf := make([]byte, sparsifyChunk)
	size := d.Size()
	for off := int64(0); off < size; {
		e, err := d.BlockStatus(off, min(size-off, statusWindow))
		if err != nil {
			return r, &block.OpError{Op: "block-status", Node: name, Off: off, Len: size - off, Err: err}
		}
		n := min(e.Len, size-off)
		if n <= 0 {
			return r, &block.OpError{Op: "block-status", Node: name, Off: off, Len: size - off, Err: block.ErrCorrupt}
		}
		if e.Status&block.Data != 0 && e.Status&block.Zero == 0 {
			if err := sparsifyRange(d, name, buf, unit, off, n, &r); err != nil {
				return r, err
			}
		}
		off += n
	}
	if err := d.Flush(); err != nil {
		return r, &block.OpError{Op: "flush", Node: name, Err: err}
	}
	if info, err := d.Info(); err == nil {
		r.After = info.AllocatedBytes
	}
	return r, nil
}

// sparsifyRange scans data range [off, off+n) of d and deallocates its
// whole zero units.
func sparsifyRange(d block.Driver, name string, buf []byte, unit, off, n int64, r *SparsifyResult) error {
	end := off + n
	for pos := off; pos < end; {
		// Chunks start at unit boundaries so zero runs are whole units.
		k := min(int64(len(buf)), end-pos)
		if next := (pos/unit + 1) * unit; pos%unit != 0 {
			k = min(k, next-pos)
		}
		p := buf[:k]
		if err := d.Pread(p, pos); err != nil {
			return &block.OpError{Op: "read", Node: name, Off: pos, Len: k, Err: err}
		}
		r.Scanned += k
		// Runs of whole zero units (a partial unit at the end of the image
		// counts as whole).
		runStart := int64(-1)
		flush := func(at int64) error {
			if runStart < 0 {
				return nil
			}
			a, b := runStart, at
			runStart = -1
			if err := block.ZeroRange(d, a, b-a, block.MayUnmap); err != nil {
				return &block.OpError{Op: "write-zeroes", Node: name, Off: a, Len: b - a, Err: err}
			}
			r.Zeroed += b - a
			return nil
		}
		for u := pos; u < pos+k; {
			ue := min((u/unit+1)*unit, pos+k)
			whole := u%unit == 0 && (ue%unit == 0 || ue == d.Size())
			if whole && block.IsZero(p[u-pos:ue-pos]) {
				if runStart < 0 {
					runStart = u
				}
			} else if err := flush(u); err != nil {
				return err
			}
			u = ue
		}
		if err := flush(pos + k); err != nil {
			return err
		}
		pos += k
	}
	return nil
}

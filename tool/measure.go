package tool

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/format/qcow2"
	"github.com/thinblk/thinblk/image"
)

// MeasureOptions are the flags of `thinblk measure`.
type MeasureOptions struct {
	// Output is "human" (default, also "") or "json".
	Output string
	// OutFormat (-O) is the format to measure for; "" means raw.
	OutFormat string
	// Options (-o) are its creation options (cluster_size, refcount_bits,
	// preallocation, backing_file, ...).
	Options map[string]string
	// Size (--size) measures a new empty image of that many bytes; -1
	// means "measure the image File instead".
	Size int64
	// File, Format (-f): the image to measure.
	File, Format string
	// Snapshot (-l) is not supported.
	Snapshot string
	// ForceShare (-U) opens the image although another process writes
	// it: no permission is refused to others (see image.Options).
	ForceShare bool
}

// Measurement is qemu-img measure's answer, with its JSON field names.
type Measurement struct {
	// Bitmaps is the size of persistent bitmaps; qemu prints it only when
	// both the source and the output format could carry them.
	Bitmaps *int64 `json:"bitmaps,omitempty"`
	// Required is the file size a conversion of the input needs.
	Required int64 `json:"required"`
	// FullyAllocated is the file size with every cluster allocated.
	FullyAllocated int64 `json:"fully-allocated"`
}

// Measure prints how large a file of format o.OutFormat must be to hold
// the image o.File (or a new image of o.Size bytes), with qemu-img
// measure's numbers and shapes.
func Measure(w io.Writer, o MeasureOptions) error {
	m, err := ComputeMeasure(o)
	if err != nil {
		return err
	}
	switch o.Output {
	case "", "human":
		fmt.Fprintf(w, "required size: %d\nfully allocated size: %d\n", m.Required, m.FullyAllocated)
		if m.Bitmaps != nil {
			fmt.Fprintf(w, "bitmaps size: %d\n", *m.Bitmaps)
		}
		return nil
	case "json":
		b, err := json.MarshalIndent(m, "", "    ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	return fmt.Errorf("measure: invalid output format %q (want human or json)", o.Output)
}

// ComputeMeasure does Measure's arithmetic. For raw the answer is the
// virtual size (rounded up to 512 bytes for --size). For qcow2 it is
// qemu's: the fully allocated size is the data plus header, L1 and L2
// tables and the refcount table and blocks needed to count all of it; the
// required size replaces the data by the clusters that the input's status
// says hold data (all of them with a backing file or preallocation).
func ComputeMeasure(o MeasureOptions) (Measurement, error) {
	if o.Snapshot != "" {
		return Measurement{}, fmt.Errorf("measure: -l %s: internal snapshots: %w", o.Snapshot, block.ErrNotSupported)
	}
	if (o.Size >= 0) == (o.File != "") {
		return Measurement{}, errors.New("measure: give either --size N or an image file")
	}
	format := o.OutFormat
	if format == "" {
		format = "raw"
	}
	var in block.Driver
	if o.File != "" {
		d, err := image.Open(o.File, image.Options{Format: o.Format, ReadOnly: true, ForceShare: o.ForceShare})
		if err != nil {
			return Measurement{}, err
		}
		defer d.Close()
		in = d
	}
	switch format {
	case "raw":
		for k := range o.Options {
			if k != "preallocation" && k != "size" {
				return Measurement{}, fmt.Errorf("measure: raw: unknown option %q", k)
			}
		}
		size := roundUpTo(o.Size, 512)
		if in != nil {
			size = in.Size()
		}
		return Measurement{Required: size, FullyAllocated: size}, nil
	case "qcow2":
		return measureQcow2(in, o)
	}
	if _, ok := image.Lookup(format); !ok {
		return Measurement{}, fmt.Errorf("measure: unknown format %q", format)
	}
	return Measurement{}, fmt.Errorf("measure: format %s: %w", format, block.ErrNotSupported)
}

// qcow2MaxL1Size is the largest L1 table qemu accepts, in bytes.
const qcow2MaxL1Size = 32 << 20

func measureQcow2(in block.Driver, o MeasureOptions) (Measurement, error) {
	opts := map[string]string{}
	hasBacking := false
	for k, v := range o.Options {
		switch k {
		case "backing_file":
			hasBacking = v != ""
		case "backing_fmt":
		default:
			opts[k] = v
		}
	}
	p, err := qcow2.ParseCreateOptions(image.CreateOptions{Size: max(o.Size, 0), Options: opts})
	if err != nil {
		return Measurement{}, fmt.Errorf("measure: %w", err)
	}
	cs := p.ClusterSize
	l2Entry := int64(8)
	if p.ExtendedL2 {
		l2Entry = 16
	}
	virtual := roundUpTo(p.Size, cs)
	if in != nil {
		virtual = roundUpTo(in.Size(), cs)
	}
	l2Tables := ceilDiv(virtual/cs, cs/l2Entry)
	if l2Tables*8 > qcow2MaxL1Size {
		return Measurement{}, errors.New("measure: the image size is too large (try using a larger cluster size)")
	}
	var required int64
	if in != nil {
		if hasBacking {
			// The new image's backing file may share nothing with the
			// input: count every cluster, as qemu does.
			required = virtual
		} else if required, err = dataClusters(in, cs); err != nil {
			return Measurement{}, err
		}
	}
	if p.Preallocation == "full" || p.Preallocation == "falloc" {
		required = virtual
	}
	full := qcow2PreallocSize(virtual, cs, p.RefcountBits, l2Entry)
	m := Measurement{Required: full - virtual + required, FullyAllocated: full}
	if in != nil && p.Version >= 3 {
		if _, ok := block.As[qcow2Image](in); ok {
			zero := int64(0)
			m.Bitmaps = &zero
		}
	}
	return m, nil
}

// qcow2Image identifies a qcow2 input (which could carry persistent
// bitmaps, so qemu reports their size).
type qcow2Image interface {
	block.Driver
	ClusterSize() int64
	BackingFile() (string, string)
}

// dataClusters counts, in bytes, the clusters of size cs that hold data in
// d's chain, walking its status the way qemu-img measure does.
func dataClusters(d block.Driver, cs int64) (int64, error) {
	var required int64
	size := d.Size()
	for off := int64(0); off < size; {
		e, err := block.ChainStatus(d, off, min(size-off, statusWindow), nil)
		if err != nil {
			return 0, &block.OpError{Op: "block-status", Node: "input", Off: off, Len: size - off, Err: err}
		}
		n := min(e.Len, size-off)
		if n <= 0 {
			return 0, &block.OpError{Op: "block-status", Node: "input", Off: off, Len: size - off, Err: block.ErrCorrupt}
		}
		if e.Status&block.Zero == 0 && e.Status&block.Data != 0 {
			n = roundUpTo(off+n, cs) - off
			required += off%cs + n
		}
		off += n
	}
	return required, nil
}

// qcow2PreallocSize is the file size of a fully allocated qcow2 image of
// virtual bytes (a multiple of cs): header cluster, L2 tables, L1 table,
// refcount metadata and data.
func qcow2PreallocSize(virtual, cs int64, refcountBits int, l2Entry int64) int64 {
	meta := cs // header
	nl2e := roundUpTo(virtual/cs, cs/l2Entry)
	meta += nl2e * l2Entry
	nl1e := roundUpTo(nl2e*l2Entry/cs, cs/8)
	meta += nl1e * 8
	meta += qcow2RefcountMetaSize((meta+virtual)/cs, cs, refcountBits)
	return meta + virtual
}

// qcow2RefcountMetaSize is the size of the refcount table and blocks that
// count clusters clusters and themselves: the fixed point of adding blocks
// and table clusters until nothing more is needed.
func qcow2RefcountMetaSize(clusters, cs int64, refcountBits int) int64 {
	perTableCluster := cs / 8
	perBlock := cs * 8 / int64(refcountBits)
	var table, blocks, n int64
	for {
		last := n
		blocks = ceilDiv(clusters+table+blocks, perBlock)
		table = ceilDiv(blocks, perTableCluster)
		n = clusters + blocks + table
		if n == last {
			return (blocks + table) * cs
		}
	}
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

func roundUpTo(v, a int64) int64 { return ceilDiv(v, a) * a }

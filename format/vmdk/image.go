package vmdk

import (
	"bytes"
	"fmt"
	"sort"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/protocol/file"
)

// Image is an open VMDK: its descriptor and extents, and the parent disk of
// a delta disk. Pread and BlockStatus may run concurrently with anything;
// on a writable monolithicSparse image (see write.go) writes may run
// concurrently on non-overlapping ranges. Every other image is read-only.
type Image struct {
	name    string
	file    block.Driver // the file opened by the caller (descriptor or monolithic extent)
	desc    *Descriptor
	extents []extent
	starts  []int64 // starts[i] is the disk offset of extents[i]
	size    int64
	parent  block.Driver
	// w is set when the image is writable (a monolithicSparse file opened
	// writable); nil for a read-only image.
	w *writer
}

var (
	_ block.Driver = (*Image)(nil)
	_ block.Backed = (*Image)(nil)
)

func init() {
	image.Register(image.Format{
		Name:   "vmdk",
		Probe:  Probe,
		Open:   openDriver,
		Create: Create,
	})
}

// Probe recognises a sparse extent header (score 100) or a text descriptor
// ("# Disk DescriptorFile" first, 100; a createType= line, 50).
func Probe(head []byte) int {
	if len(head) >= 4 && string(head[:4]) == Magic {
		return 100
	}
	if bytes.HasPrefix(head, []byte("# Disk DescriptorFile")) {
		return 100
	}
	if bytes.IndexByte(head, 0) < 0 {
		for _, line := range bytes.Split(head, []byte("\n")) {
			if bytes.HasPrefix(bytes.TrimSpace(line), []byte("createType=")) {
				return 50
			}
		}
	}
	return 0
}

// openDriver is the registry's Open: a writable open of an empty
// streamOptimized disk gives the sequential writer, anything else an Image
// (writable only for a monolithicSparse disk, see Open).
func openDriver(f block.Driver, o image.FormatOpen) (block.Driver, error) {
	if !o.ReadOnly && f.Caps().Write && len(o.Options) == 0 && f.Size() >= headerSize {
		b := make([]byte, headerSize)
		if err := f.Pread(b, 0); err != nil {
			return nil, err
		}
		if h0, err := parseSparseHeader(b); err == nil && h0.GDOffset == gdAtEnd {
			e, h, err := openSparseExtent(f, false, o.Name, -1)
			if err != nil {
				return nil, &block.OpError{Op: "open", Node: o.Name, Err: err}
			}
			w, err := openStreamWriter(f, o.Name, h, e)
			if err != nil {
				return nil, &block.OpError{Op: "open", Node: o.Name, Err: err}
			}
			if w != nil {
				return w, nil
			}
		}
	}
	return Open(f, o)
}

// Open opens the VMDK in file: a monolithic sparse or streamOptimized file,
// or a text descriptor whose extent files are opened read-only by their
// names relative to o.Name. On success the image owns file; on failure the
// caller closes it. A delta disk's parent is opened through o.OpenBacking
// (as format vmdk) unless o.NoBacking. Opened writable (not o.ReadOnly
// over a writable file), a monolithicSparse disk with all its grain tables
// is writable (see write.go); every other disk is read-only.
func Open(f block.Driver, o image.FormatOpen) (*Image, error) {
	img, err := open(f, o)
	if err != nil {
		return nil, &block.OpError{Op: "open", Node: o.Name, Err: err}
	}
	return img, nil
}

func open(f block.Driver, o image.FormatOpen) (*Image, error) {
	for k := range o.Options {
		return nil, fmt.Errorf("vmdk: %w: unknown option %q", block.ErrInvalid, k)
	}
	img := &Image{name: o.Name, file: f}
	fileSize := f.Size()
	head := make([]byte, min(fileSize, headerSize))
	if err := f.Pread(head, 0); err != nil {
		return nil, err
	}
	var err error
	if len(head) >= 4 && string(head[:4]) == Magic {
		err = img.openMonolithic(o)
	} else {
		err = img.openDescriptor(o)
	}
	if err != nil {
		img.closeExtents()
		return nil, err
	}
	if hint := img.desc.ParentFileNameHint; hint != "" && !o.NoBacking {
		if o.OpenBacking == nil {
			img.closeExtents()
			return nil, fmt.Errorf("%w: vmdk: delta disk of %q but no way to open it", block.ErrInvalid, hint)
		}
		p, err := o.OpenBacking(hint, "vmdk")
		if err != nil {
			img.closeExtents()
			return nil, fmt.Errorf("vmdk: opening parent %q: %w", hint, err)
		}
		img.parent = p
	}
	if !o.ReadOnly && f.Caps().Write {
		if _, err := img.enableWrite(); err != nil {
			img.closeExtents()
			if img.parent != nil {
				img.parent.Close()
			}
			return nil, err
		}
	}
	return img, nil
}

// openMonolithic opens a file that is itself one sparse extent, with its
// descriptor embedded.
func (img *Image) openMonolithic(o image.FormatOpen) error {
	e, h, err := openSparseExtent(img.file, false, o.Name, -1)
	if err != nil {
		return err
	}
	img.extents = []extent{e}
	img.starts = []int64{0}
	img.size = e.bytes
	img.desc = &Descriptor{CID: 0xffffffff, ParentCID: 0xffffffff, DDB: map[string]string{}}
	if h.DescriptorSize == 0 {
		return nil
	}
	fileSize := img.file.Size()
	if h.DescriptorSize > maxDescriptorSize/sectorSize || h.DescriptorOffset > uint64(fileSize)/sectorSize ||
		int64(h.DescriptorSize)*sectorSize > fileSize-int64(h.DescriptorOffset)*sectorSize {
		return corruptf("embedded descriptor of %d sectors at sector %d does not fit a file of %d bytes (at most %d bytes)",
			h.DescriptorSize, h.DescriptorOffset, fileSize, maxDescriptorSize)
	}
	text := make([]byte, h.DescriptorSize*sectorSize)
	if err := img.file.Pread(text, int64(h.DescriptorOffset)*sectorSize); err != nil {
		return err
	}
	if i := bytes.IndexByte(text, 0); i >= 0 {
		text = text[:i]
	}
	d, err := parseDescriptor(string(text))
	if err != nil {
		return err
	}
	img.desc = d
	return nil
}

// openDescriptor opens a text descriptor and its extent files.
func (img *Image) openDescriptor(o image.FormatOpen) error {
	fileSize := img.file.Size()
	if fileSize > maxDescriptorSize {
		return corruptf("no sparse extent magic, and %d bytes is too large for a descriptor file", fileSize)
	}
	text := make([]byte, fileSize)
	if err := img.file.Pread(text, 0); err != nil {
		return err
	}
	// qemu pads a rewritten descriptor file with NULs to a sector; like
	// qemu, read the text up to the first NUL.
	if i := bytes.IndexByte(text, 0); i >= 0 {
		text = text[:i]
	}
	d, err := parseDescriptor(string(text))
	if err != nil {
		return err
	}
	if len(d.Extents) == 0 {
		return corruptf("neither a sparse extent nor a text descriptor with extents")
	}
	img.desc = d
	for _, line := range d.Extents {
		extBytes := line.Sectors * sectorSize
		if img.size > (1<<62)-extBytes {
			return corruptf("extents add up to more than 4 EiB")
		}
		e, err := img.openExtent(line, o)
		if err != nil {
			return err
		}
		img.starts = append(img.starts, img.size)
		img.extents = append(img.extents, e)
		img.size += extBytes
	}
	return nil
}

// openExtentFile opens an extent file read-only, refusing writers and
// resizers to other processes unless forceShare (-U), with the locks QEMU
// takes on the extents of a disk it reads (a variable so that the fuzz
// test never opens files named by random descriptors).
var openExtentFile = func(path string, forceShare bool) (block.Driver, error) {
	return file.Open(path, file.Options{ReadOnly: true, Unshare: file.PermWrite | file.PermResize, ForceShare: forceShare})
}

// openExtent opens the file of one extent line.
func (img *Image) openExtent(line ExtentLine, o image.FormatOpen) (extent, error) {
	extBytes := line.Sectors * sectorSize
	switch line.Type {
	case "ZERO":
		return zeroExtent{bytes: extBytes}, nil
	case "VMFSSPARSE", "SESPARSE":
		return nil, fmt.Errorf("vmdk: %w: %s extents (%q)", block.ErrNotSupported, line.Type, line.FileName)
	}
	if image.IsURL(o.Name) {
		return nil, fmt.Errorf("vmdk: %w: extent files of a descriptor opened by URL", block.ErrNotSupported)
	}
	path := image.ResolveBacking(o.Name, line.FileName)
	f, err := openExtentFile(path, o.ForceShare)
	if err != nil {
		return nil, fmt.Errorf("vmdk: extent %q: %w", path, err)
	}
	var e extent
	switch line.Type {
	case "SPARSE":
		var se *sparseExtent
		se, _, err = openSparseExtent(f, true, path, extBytes)
		if se != nil {
			se.extType = "SPARSE"
			e = se
		}
	default: // FLAT, VMFS, VMFSRDM, VMFSRAW
		if line.Offset > (1<<62)/sectorSize {
			err = corruptf("extent offset %d sectors too large", line.Offset)
			break
		}
		e, err = newFlatExtent(f, true, path, line.Offset*sectorSize, extBytes)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return e, nil
}

func (img *Image) closeExtents() {
	for _, e := range img.extents {
		e.close()
	}
	img.extents = nil
}

// find returns the index of the extent holding off (off < size).
func (img *Image) find(off int64) int {
	return sort.Search(len(img.starts), func(i int) bool { return img.starts[i] > off }) - 1
}

// Size returns the virtual size in bytes (the sum of the extents).
func (img *Image) Size() int64 { return img.size }

// Backing returns the parent disk, or nil.
func (img *Image) Backing() block.Driver { return img.parent }

func (img *Image) check(op string, off, n int64) error {
	if err := block.CheckRange(off, n, img.size); err != nil {
		return &block.OpError{Op: op, Node: img.name, Off: off, Len: n, Err: err}
	}
	return nil
}

// Pread reads p at off: allocated grains from their extent, zeroed grains
// as zeros, unallocated grains from the parent (zeros past its end or
// without one).
func (img *Image) Pread(p []byte, off int64) error {
	if err := img.check("pread", off, int64(len(p))); err != nil {
		return err
	}
	for len(p) > 0 {
		i := img.find(off)
		e, rel := img.extents[i], off-img.starts[i]
		st, err := e.status(rel, min(int64(len(p)), e.size()-rel))
		if err != nil {
			return &block.OpError{Op: "pread", Node: img.name, Off: off, Len: int64(len(p)), Err: err}
		}
		chunk := p[:st.Len]
		switch {
		case st.Status&block.Data != 0:
			err = e.readData(chunk, rel)
		case st.Status&block.Zero != 0 || img.parent == nil:
			clear(chunk)
		default:
			err = readParent(img.parent, chunk, off)
		}
		if err != nil {
			return &block.OpError{Op: "pread", Node: img.name, Off: off, Len: st.Len, Err: err}
		}
		p = p[st.Len:]
		off += st.Len
	}
	return nil
}

// readParent reads p at off from parent, zeros past its end.
func readParent(parent block.Driver, p []byte, off int64) error {
	ps := parent.Size()
	if off >= ps {
		clear(p)
		return nil
	}
	n := min(int64(len(p)), ps-off)
	clear(p[n:])
	return parent.Pread(p[:n], off)
}

// BlockStatus reports the run at off in this disk only. HostOffset is in
// the file of the extent holding off.
func (img *Image) BlockStatus(off, n int64) (block.Extent, error) {
	if err := img.check("block-status", off, n); err != nil {
		return block.Extent{}, err
	}
	if n == 0 {
		return block.Extent{}, &block.OpError{Op: "block-status", Node: img.name, Off: off, Err: fmt.Errorf("%w: zero length", block.ErrInvalid)}
	}
	i := img.find(off)
	e, rel := img.extents[i], off-img.starts[i]
	st, err := e.status(rel, min(n, e.size()-rel))
	if err != nil {
		return block.Extent{}, &block.OpError{Op: "block-status", Node: img.name, Off: off, Len: n, Err: err}
	}
	st.Off = off
	return st, nil
}

func (img *Image) readOnly(op string, off, n int64) error {
	return &block.OpError{Op: op, Node: img.name, Off: off, Len: n, Err: fmt.Errorf("vmdk: %w: thinblk writes only monolithicSparse disks and new streamOptimized ones", block.ErrReadOnly)}
}

// Close closes the extent files, the file given to Open and the parent.
func (img *Image) Close() error {
	img.closeExtents()
	err := img.file.Close()
	if img.parent != nil {
		if perr := img.parent.Close(); err == nil {
			err = perr
		}
	}
	return err
}

// Limits: byte-addressable; a grain is the optimal transfer.
func (img *Image) Limits() block.Limits {
	return block.Limits{RequestAlign: 1, OptimalTransfer: img.ClusterSize()}
}

// ClusterSize returns the grain size of the first sparse extent in bytes,
// 0 for a disk of flat extents only.
func (img *Image) ClusterSize() int64 {
	for _, e := range img.extents {
		if se, ok := e.(*sparseExtent); ok {
			return se.grain
		}
	}
	return 0
}

// BackingFile returns the parent file name hint (format vmdk), "" for a
// disk without parent.
func (img *Image) BackingFile() (name, format string) {
	if img.desc.ParentFileNameHint == "" {
		return "", ""
	}
	return img.desc.ParentFileNameHint, "vmdk"
}

// Descriptor returns the parsed descriptor (embedded or text).
func (img *Image) Descriptor() *Descriptor { return img.desc }

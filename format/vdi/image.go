package vdi

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
)

// Image is an open VDI. Pread and BlockStatus may run concurrently with
// anything; writes may run concurrently on non-overlapping ranges.
type Image struct {
	file     block.Driver
	name     string
	readOnly bool
	hdr      Header // BlocksAllocated guarded by allocMu
	size     int64
	block    int64 // block size in bytes
	stride   int64 // block size + block extra
	// bmap holds the block map; entries are read and written atomically
	// (an allocation stores its entry only after the block is written).
	bmap []atomic.Uint32
	// allocMu serializes block allocation and guards hdr.BlocksAllocated
	// and nextBlock.
	allocMu sync.Mutex
	// nextBlock is the data block the next allocation takes: past every
	// block mapped and every block in the file (after a crash, both can
	// exceed the header's blocks_allocated).
	nextBlock uint32
}

var _ block.Driver = (*Image)(nil)

func init() {
	image.Register(image.Format{
		Name:   "vdi",
		Probe:  Probe,
		Open:   func(f block.Driver, o image.FormatOpen) (block.Driver, error) { return Open(f, o) },
		Create: Create,
	})
}

// Probe recognises the header signature at offset 0x40.
func Probe(head []byte) int {
	if len(head) >= 0x48 && binary.LittleEndian.Uint32(head[0x40:]) == Signature {
		return 100
	}
	return 0
}

// Open opens the VDI in file. On success the image owns file; on failure
// the caller closes it. It is writable unless o.ReadOnly or file is
// read-only.
func Open(file block.Driver, o image.FormatOpen) (*Image, error) {
	img, err := open(file, o)
	if err != nil {
		return nil, &block.OpError{Op: "open", Node: o.Name, Err: err}
	}
	return img, nil
}

func open(file block.Driver, o image.FormatOpen) (*Image, error) {
	for k := range o.Options {
		return nil, fmt.Errorf("vdi: %w: unknown option %q", block.ErrInvalid, k)
	}
	fileSize := file.Size()
	if fileSize < headerEnd {
		return nil, corruptf("file of %d bytes is too short for a header", fileSize)
	}
	b := make([]byte, headerEnd)
	if err := file.Pread(b, 0); err != nil {
		return nil, err
	}
	h, err := parseHeader(b, fileSize)
	if err != nil {
		return nil, err
	}
	raw := make([]byte, int64(h.BlocksInImage)*4) // inside the file: checked by parseHeader
	if err := file.Pread(raw, int64(h.OffsetBmap)); err != nil {
		return nil, err
	}
	img := &Image{
		file:     file,
		name:     o.Name,
		readOnly: o.ReadOnly || !file.Caps().Write,
		hdr:      h,
		size:     int64(h.DiskSize),
		block:    int64(h.BlockSize),
		stride:   int64(h.BlockSize) + int64(h.BlockExtra),
		bmap:     make([]atomic.Uint32, h.BlocksInImage),
	}
	var used map[uint32]bool
	if !img.readOnly {
		used = map[uint32]bool{}
	}
	img.nextBlock = h.BlocksAllocated
	for i := range img.bmap {
		v := binary.LittleEndian.Uint32(raw[i*4:])
		img.bmap[i].Store(v)
		if used != nil && v < entryDiscarded {
			// A writable image allocates after every data block in use.
			if used[v] {
				return nil, corruptf("block %d maps to data block %d, which another block maps too; open it read-only", i, v)
			}
			used[v] = true
			img.nextBlock = max(img.nextBlock, v+1)
		}
	}
	if !img.readOnly {
		// Never reuse a block that a crash left written but unmapped:
		// allocate past the end of the data area in the file too.
		if end := fileSize - int64(h.OffsetData); end > 0 {
			if inFile := (end + img.stride - 1) / img.stride; inFile > int64(img.nextBlock) && inFile < entryDiscarded {
				img.nextBlock = uint32(inFile)
			}
		}
	}
	return img, nil
}

// Size returns the virtual size in bytes.
func (img *Image) Size() int64 { return img.size }

// ClusterSize returns the block size in bytes.
func (img *Image) ClusterSize() int64 { return img.block }

func (img *Image) opErr(op string, off, n int64, err error) error {
	return &block.OpError{Op: op, Node: img.name, Off: off, Len: n, Err: err}
}

// host returns the file offset of byte off (inside an allocated block
// whose map entry is e).
func (img *Image) host(e uint32, off int64) int64 {
	return int64(img.hdr.OffsetData) + int64(e)*img.stride + int64(img.hdr.BlockExtra) + off%img.block
}

// Pread reads p at off; unallocated and discarded blocks read as zeros.
func (img *Image) Pread(p []byte, off int64) error {
	if err := block.CheckRange(off, int64(len(p)), img.size); err != nil {
		return img.opErr("pread", off, int64(len(p)), err)
	}
	for len(p) > 0 {
		chunk := min(int64(len(p)), img.block-off%img.block)
		e := img.bmap[off/img.block].Load()
		if e >= entryDiscarded {
			clear(p[:chunk])
		} else {
			h := img.host(e, off)
			if h+chunk > img.file.Size() {
				return img.opErr("pread", off, chunk, corruptf("block %d at offset %d is past the end of the file", off/img.block, h))
			}
			if err := img.file.Pread(p[:chunk], h); err != nil {
				return err
			}
		}
		p = p[chunk:]
		off += chunk
	}
	return nil
}

// statusOf maps an entry to a status and host offset.
func (img *Image) statusOf(e uint32, off int64) (block.Status, int64) {
	if e >= entryDiscarded {
		// A VDI has no backing file: unallocated blocks read as zeros
		// and are reported so, as qemu does.
		return block.Zero, -1
	}
	return block.Data | block.Allocated, img.host(e, off)
}

// BlockStatus merges blocks of the same status (allocated blocks only when
// contiguous in the file) into one run.
func (img *Image) BlockStatus(off, n int64) (block.Extent, error) {
	if err := block.CheckRange(off, n, img.size); err != nil {
		return block.Extent{}, img.opErr("block-status", off, n, err)
	}
	if n == 0 {
		return block.Extent{}, img.opErr("block-status", off, n, fmt.Errorf("%w: zero length", block.ErrInvalid))
	}
	st, host := img.statusOf(img.bmap[off/img.block].Load(), off)
	end := min(off-off%img.block+img.block, off+n)
	for end < off+n {
		s2, h2 := img.statusOf(img.bmap[end/img.block].Load(), end)
		if s2 != st || (host >= 0 && h2 != host+(end-off)) {
			break
		}
		end = min(end+img.block, off+n)
	}
	return block.Extent{Off: off, Len: end - off, Status: st, HostOffset: host}, nil
}

// Flush flushes the file.
func (img *Image) Flush() error {
	if img.readOnly {
		return nil
	}
	return img.file.Flush()
}

// Close closes the file (without flushing).
func (img *Image) Close() error { return img.file.Close() }

// Caps: writes when opened writable; WriteZeroes is native (it never
// allocates) and FastZero (NoFallback succeeds where no block is
// allocated, and fails with block.ErrNotSupported where one is); block
// status.
func (img *Image) Caps() block.Caps {
	if img.readOnly {
		return block.Caps{BlockStatus: true}
	}
	return block.Caps{Write: true, Flush: true, WriteZeroes: true, FastZero: true, BlockStatus: true}
}

// Limits: byte-addressable; a block is the optimal transfer.
func (img *Image) Limits() block.Limits {
	return block.Limits{RequestAlign: 1, OptimalTransfer: img.block}
}

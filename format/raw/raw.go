package raw

import (
	"fmt"
	"sync/atomic"

	"github.com/thinblk/thinblk/block"
)

// Node is a raw image over a file node. It is safe for concurrent use as
// far as its file node is.
type Node struct {
	file   block.Driver
	offset int64
	// whole is set when the window is the whole file (offset 0, no size):
	// only then can the image be resized.
	whole bool
	size  atomic.Int64
}

var (
	_ block.Driver  = (*Node)(nil)
	_ block.Wrapper = (*Node)(nil)
)

// Open returns a raw image over file using the window [offset,
// offset+size); size -1 means "to the end of the file". The window must lie
// inside the file. On success the node owns file (Close closes it).
func Open(file block.Driver, offset, size int64) (*Node, error) {
	fileSize := file.Size()
	if offset < 0 || offset > fileSize {
		return nil, fmt.Errorf("raw: %w: offset %d outside a file of %d bytes", block.ErrInvalid, offset, fileSize)
	}
	if size == -1 {
		size = fileSize - offset
	}
	if size < 0 || size > fileSize-offset {
		return nil, fmt.Errorf("raw: %w: size %d at offset %d does not fit a file of %d bytes", block.ErrInvalid, size, offset, fileSize)
	}
	n := &Node{file: file, offset: offset, whole: offset == 0 && size == fileSize}
	n.size.Store(size)
	return n, nil
}

// Unwrap returns the file node.
func (n *Node) Unwrap() block.Driver { return n.file }

// Backing returns nil: a raw image never has a backing file.
func (n *Node) Backing() block.Driver { return nil }

// Size returns the size of the window in bytes.
func (n *Node) Size() int64 { return n.size.Load() }

func (n *Node) check(op string, off, length int64) error {
	if err := block.CheckRange(off, length, n.size.Load()); err != nil {
		return &block.OpError{Op: op, Node: "raw", Off: off, Len: length, Err: err}
	}
	return nil
}

// Pread reads from the file at offset+off.
func (n *Node) Pread(p []byte, off int64) error {
	if err := n.check("pread", off, int64(len(p))); err != nil {
		return err
	}
	return n.file.Pread(p, n.offset+off)
}

// Pwrite writes to the file at offset+off.
func (n *Node) Pwrite(p []byte, off int64, flags block.Flags) error {
	if err := n.check("pwrite", off, int64(len(p))); err != nil {
		return err
	}
	return n.file.Pwrite(p, n.offset+off, flags)
}

// Discard passes the discard to the file.
func (n *Node) Discard(off, length int64, flags block.Flags) error {
	if err := n.check("discard", off, length); err != nil {
		return err
	}
	return n.file.Discard(n.offset+off, length, flags)
}

// WriteZeroes passes the request, flags included, to the file.
func (n *Node) WriteZeroes(off, length int64, flags block.Flags) error {
	if err := n.check("write-zeroes", off, length); err != nil {
		return err
	}
	return n.file.WriteZeroes(n.offset+off, length, flags)
}

// Preallocate passes the hint to the file when it can take it
// (block.Preallocator), moved into the window; otherwise it does nothing.
func (n *Node) Preallocate(off, length int64) error {
	if err := n.check("preallocate", off, length); err != nil {
		return err
	}
	if p, ok := block.As[block.Preallocator](n.file); ok {
		return p.Preallocate(n.offset+off, length)
	}
	return nil
}

// BlockStatus returns the file's status of the run at offset+off, moved
// into the window, with HostOffset the run's offset in the file.
func (n *Node) BlockStatus(off, length int64) (block.Extent, error) {
	if err := n.check("block-status", off, length); err != nil {
		return block.Extent{}, err
	}
	if length == 0 {
		return block.Extent{}, &block.OpError{Op: "block-status", Node: "raw", Off: off, Err: fmt.Errorf("%w: zero length", block.ErrInvalid)}
	}
	e, err := n.file.BlockStatus(n.offset+off, length)
	if err != nil {
		return block.Extent{}, err
	}
	if e.Off != n.offset+off || e.Len <= 0 || e.Len > length {
		return block.Extent{}, &block.OpError{Op: "block-status", Node: "raw", Off: off, Len: length,
			Err: fmt.Errorf("%w: file node answered run %d+%d for %d+%d", block.ErrCorrupt, e.Off, e.Len, n.offset+off, length)}
	}
	return block.Extent{Off: off, Len: e.Len, Status: e.Status, HostOffset: n.offset + off}, nil
}

// Flush flushes the file.
func (n *Node) Flush() error { return n.file.Flush() }

// Close closes the file.
func (n *Node) Close() error { return n.file.Close() }

// Caps are the file's.
func (n *Node) Caps() block.Caps { return n.file.Caps() }

// Limits are the file's.
func (n *Node) Limits() block.Limits { return n.file.Limits() }

// Info reports format "raw", the window's size, and the file's allocation
// and watermark (host offsets).
func (n *Node) Info() (block.Info, error) {
	fi, err := n.file.Info()
	if err != nil {
		return block.Info{}, err
	}
	return block.Info{
		Format:               "raw",
		VirtualSize:          n.size.Load(),
		AllocatedBytes:       fi.AllocatedBytes,
		Watermark:            fi.Watermark,
		UnallocatedReadsZero: true,
		ZeroUnmapDeallocates: fi.ZeroUnmapDeallocates,
	}, nil
}

// truncater is what a file node offers for resizing (protocol/file,
// protocol/mem).
type truncater interface {
	Truncate(size int64) error
}

// Truncate resizes an image that spans its whole file, by resizing the file
// node. It fails with block.ErrNotSupported for a window or a file node that
// cannot be resized (a block device).
func (n *Node) Truncate(size int64) error {
	if !n.whole {
		return &block.OpError{Op: "truncate", Node: "raw", Off: size, Err: fmt.Errorf("%w: resizing a raw image with an offset or size window", block.ErrNotSupported)}
	}
	t, ok := block.As[truncater](n.file)
	if !ok {
		return &block.OpError{Op: "truncate", Node: "raw", Off: size, Err: fmt.Errorf("%w: the file node cannot be resized", block.ErrNotSupported)}
	}
	if err := t.Truncate(size); err != nil {
		return err
	}
	n.size.Store(size)
	return nil
}

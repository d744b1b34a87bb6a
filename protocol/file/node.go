package file

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync/atomic"

	"github.com/thinblk/thinblk/block"
)

// Node is an open file or block device. See the package documentation for
// what each operation does.
type Node struct {
	name string
	opts Options
	// f is the descriptor for every request; it has O_DIRECT when
	// opts.Direct.
	f *os.File
	// buffered is, for a Direct node only, a second descriptor without
	// O_DIRECT for requests that are not aligned. nil otherwise.
	buffered *os.File
	isDevice bool
	dev      device // block devices only

	// size is the node's size; it changes only through a growing Pwrite or
	// Truncate.
	size atomic.Int64

	// directAlign is the offset and length alignment of O_DIRECT requests
	// and directMemAlign the buffer alignment (Direct only).
	directAlign    int64
	directMemAlign int64
	// hostBlock is the filesystem block size (regular files) or the
	// physical block size (block devices).
	hostBlock int64

	// Kernel refusals (EOPNOTSUPP), remembered so they are not retried.
	noPunch     atomic.Bool // fallocate PUNCH_HOLE (files and devices)
	noZeroRange atomic.Bool // fallocate ZERO_RANGE (files)
	noPrealloc  atomic.Bool // fallocate KEEP_SIZE (files)
	noDiscard   atomic.Bool // BLKDISCARD
	noSeekData  atomic.Bool // SEEK_DATA/SEEK_HOLE
	noFiemap    atomic.Bool // FIEMAP (reserved extents inside holes)

	closed atomic.Bool

	// Image locking (lock.go): whether the node takes part, and the
	// identity of its file in the process-wide lock table.
	locking bool
	lockKey lockKey
}

var _ block.Driver = (*Node)(nil)

// Open opens the regular file or block device name. A directory or any other
// kind of file is refused with block.ErrInvalid. See Options for the modes.
// Open takes the image locks of Options (Perm, Unshare) and fails with a
// *LockError when another process holds conflicting ones; Close drops them.
func Open(name string, o Options) (*Node, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("%w: is a directory", block.ErrInvalid)}
	}
	device := isBlockDevice(fi)
	if !fi.Mode().IsRegular() && !device {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("%w: not a regular file or block device (%v)", block.ErrInvalid, fi.Mode().Type())}
	}
	if o.Direct && oDirect == 0 {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("%w: direct I/O on this platform", block.ErrNotSupported)}
	}
	flags := os.O_RDWR
	if o.ReadOnly {
		flags = os.O_RDONLY
	}
	n := &Node{name: name, opts: o, isDevice: device}
	if o.Direct {
		n.f, err = os.OpenFile(name, flags|oDirect, 0)
		if err != nil {
			if errors.Is(err, errInvalidFlag) {
				err = fmt.Errorf("%w: O_DIRECT is refused by the filesystem: %w", block.ErrNotSupported, err)
			}
			return nil, err
		}
		n.buffered, err = os.OpenFile(name, flags, 0)
	} else {
		n.f, err = os.OpenFile(name, flags, 0)
	}
	if err != nil {
		n.closeFiles()
		return nil, err
	}
	if err := n.probe(); err != nil {
		n.closeFiles()
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	if err := n.initLock(); err != nil {
		n.closeFiles()
		var le *LockError
		if errors.As(err, &le) {
			return nil, err
		}
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return n, nil
}

// probe fills in sizes and alignments after the descriptors are open.
func (n *Node) probe() error {
	fi, err := n.f.Stat()
	if err != nil {
		return err
	}
	if n.isDevice {
		dev, err := probeDevice(n.f)
		if err != nil {
			return err
		}
		n.dev = dev
		n.size.Store(dev.size)
		n.hostBlock = dev.physicalBlock
		n.directAlign = dev.logicalBlock
		n.directMemAlign = max(dev.dmaAlign, dev.logicalBlock)
		return nil
	}
	n.size.Store(fi.Size())
	n.hostBlock = hostBlockSize(fi)
	if n.opts.Direct {
		// Align to at least a page: then the only page shared between a
		// direct request and a buffered one (see rw.go) is the file's
		// partial tail page, and a direct write cannot race with buffered
		// writeback of a page it overlaps.
		n.directAlign, n.directMemAlign = directAlign(n.f)
		n.directAlign = max(n.directAlign, int64(os.Getpagesize()))
	}
	return nil
}

func (n *Node) closeFiles() error {
	var errs []error
	for _, f := range []*os.File{n.f, n.buffered} {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	return errors.Join(errs...)
}

// Name returns the name the node was opened with.
func (n *Node) Name() string { return n.name }

// Size returns the current size in bytes.
func (n *Node) Size() int64 { return n.size.Load() }

// opError wraps err for a request, adding the block sentinel that matches
// the host error.
func (n *Node) opError(op string, off, length int64, err error) error {
	if errors.Is(err, os.ErrClosed) {
		err = fmt.Errorf("%w: %w", block.ErrClosed, err)
	} else {
		err = platformErr(err)
	}
	return &block.OpError{Op: op, Node: n.name, Off: off, Len: length, Err: err}
}

// check validates a request against the node: open, in range, and writable
// when write is set.
func (n *Node) check(op string, off, length int64, write bool) error {
	if n.closed.Load() {
		return &block.OpError{Op: op, Node: n.name, Off: off, Len: length, Err: block.ErrClosed}
	}
	if write && n.opts.ReadOnly {
		return &block.OpError{Op: op, Node: n.name, Off: off, Len: length, Err: block.ErrReadOnly}
	}
	if err := block.CheckRange(off, length, n.size.Load()); err != nil {
		return &block.OpError{Op: op, Node: n.name, Off: off, Len: length, Err: err}
	}
	return nil
}

// Close closes the descriptors and drops the node's image locks. It does not
// flush. Later calls fail with block.ErrClosed.
func (n *Node) Close() error {
	if n.closed.Swap(true) {
		return nil
	}
	n.releaseLock()
	return n.closeFiles()
}

// Truncate sets the size of a regular file (ftruncate) and of the node.
// Growing adds a hole; shrinking drops the data past size. It fails with
// block.ErrNotSupported on a block device and block.ErrReadOnly on a
// read-only node. Requests beyond the new size must not run concurrently.
func (n *Node) Truncate(size int64) error {
	if err := n.check("truncate", 0, 0, true); err != nil {
		return err
	}
	if n.isDevice {
		return &block.OpError{Op: "truncate", Node: n.name, Off: size, Err: fmt.Errorf("%w: a block device cannot be resized", block.ErrNotSupported)}
	}
	if size < 0 {
		return &block.OpError{Op: "truncate", Node: n.name, Off: size, Err: fmt.Errorf("%w: negative size", block.ErrInvalid)}
	}
	if err := n.f.Truncate(size); err != nil {
		return n.opError("truncate", size, 0, err)
	}
	n.size.Store(size)
	return nil
}

// Flush makes completed writes durable (fdatasync).
func (n *Node) Flush() error {
	if n.closed.Load() {
		return &block.OpError{Op: "flush", Node: n.name, Err: block.ErrClosed}
	}
	if err := fdatasync(n.f); err != nil {
		return n.opError("flush", 0, 0, err)
	}
	return nil
}

// Caps reports what the node does natively; it depends on the kind of file,
// the options and, for block devices, the queue limits read at Open.
func (n *Node) Caps() block.Caps {
	w := !n.opts.ReadOnly
	c := block.Caps{Write: w, Flush: true, FUA: w}
	if !w {
		return c
	}
	if n.isDevice {
		zeroes := n.dev.writeZeroesMax > 0
		// Whether a device's write-zeroes without NOUNMAP deallocates is
		// not reported reliably (loop devices punch holes in their file
		// but show write_zeroes_unmap_max_bytes 0): assume it does when
		// the device can discard at all.
		unmap := n.dev.writeZeroesUnmapMax > 0 || n.dev.discardMax > 0
		c.Discard = n.opts.Discard && n.dev.discardMax > 0
		c.WriteZeroes = zeroes
		c.FastZero = zeroes
		c.ZeroUnmap = n.opts.Discard && zeroes && unmap
		return c
	}
	c.Discard = n.opts.Discard && sparseSupport
	c.DiscardZeroes = c.Discard
	c.WriteZeroes = sparseSupport
	c.FastZero = sparseSupport
	c.ZeroUnmap = c.Discard
	c.BlockStatus = sparseSupport
	return c
}

// Limits: see the package documentation. Block devices report their
// logical block size as RequestAlign, regular files 1, O_DIRECT files the
// direct I/O alignment.
func (n *Node) Limits() block.Limits {
	l := block.Limits{RequestAlign: 1, PhysicalBlock: n.hostBlock}
	if n.opts.Direct {
		l.RequestAlign = n.directAlign
	}
	if n.isDevice {
		l.RequestAlign = max(l.RequestAlign, n.dev.logicalBlock)
		l.OptimalTransfer = n.dev.optimalIO
		l.DiscardGranularity = max(n.dev.discardGranularity, n.dev.logicalBlock)
		l.DiscardAlignment = l.DiscardGranularity
		l.MaxDiscard = n.dev.discardMax
		return l
	}
	l.DiscardGranularity = n.hostBlock
	l.DiscardAlignment = n.hostBlock
	return l
}

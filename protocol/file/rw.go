package file

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"unsafe"

	"github.com/thinblk/thinblk/block"
)

// bounceSize is the largest piece a direct request moves through one bounce
// buffer.
const bounceSize = 1 << 20

// bouncePool holds page-aligned buffers of bounceSize bytes (as *[]byte).
// Alignment to 4096 covers every memory alignment O_DIRECT asks for in
// practice; alignedBuffer checks it.
var bouncePool = sync.Pool{New: func() any {
	b := alignedBuffer(bounceSize, 4096)
	return &b
}}

// alignedBuffer returns n bytes whose address is a multiple of align.
func alignedBuffer(n, align int) []byte {
	raw := make([]byte, n+align)
	skip := 0
	if rem := int(uintptr(unsafe.Pointer(&raw[0])) % uintptr(align)); rem != 0 {
		skip = align - rem
	}
	return raw[skip : skip+n : skip+n]
}

func memAligned(p []byte, align int64) bool {
	return len(p) == 0 || uintptr(unsafe.Pointer(&p[0]))%uintptr(align) == 0
}

// Buffered requests on a Direct node. Requests that O_DIRECT cannot serve
// (unaligned offset or length, the unaligned tail of a file) go through the
// second descriptor, without O_DIRECT. They are coherent with direct ones
// (the kernel writes back and drops cached pages around direct I/O) as long
// as a buffered write and a direct write never touch the same page at the
// same time. For regular files directAlign is at least a page, so only
// requests overlapping each other's pages, which the Driver contract does
// not allow in parallel, can collide. Block devices with 512-byte blocks
// share pages between neighbouring blocks: callers that issue unaligned
// requests in parallel with aligned ones there should use block.Align,
// which turns them into aligned direct requests.

// directOK reports whether a request of length bytes at off can use O_DIRECT:
// off aligned, and length aligned or ending at the end of the node (the
// tail block of a file whose size is not aligned, read only).
func (n *Node) directOK(off, length int64, read bool) bool {
	a := n.directAlign
	if off%a != 0 {
		return false
	}
	return length%a == 0 || (read && off+length == n.size.Load())
}

// Pread fills p from off. Reading past Size is block.ErrOutOfRange.
func (n *Node) Pread(p []byte, off int64) error {
	length := int64(len(p))
	if err := n.check("pread", off, length, false); err != nil {
		return err
	}
	var err error
	switch {
	case length == 0:
	case !n.opts.Direct:
		err = readFull(n.f, p, off)
	case !n.directOK(off, length, true):
		err = readFull(n.buffered, p, off)
	case length%n.directAlign == 0 && memAligned(p, n.directMemAlign):
		err = readFull(n.f, p, off)
	default:
		err = n.readBounced(p, off)
	}
	if err != nil {
		return n.opError("pread", off, length, err)
	}
	return nil
}

// readFull reads len(p) bytes at off. A short read (the file shrank under
// the node) is an error.
func readFull(f *os.File, p []byte, off int64) error {
	_, err := f.ReadAt(p, off)
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("file shorter than the node: %w", io.ErrUnexpectedEOF)
	}
	return err
}

// readBounced reads through aligned bounce buffers with O_DIRECT. The last
// piece may be cut short by the end of the file.
// Preconditions: directOK(off, len(p), true).
func (n *Node) readBounced(p []byte, off int64) error {
	bp := bouncePool.Get().(*[]byte)
	defer bouncePool.Put(bp)
	bounce := *bp
	for len(p) > 0 {
		c := min(len(p), len(bounce))
		want := roundUp(int64(c), n.directAlign)
		got, err := n.f.ReadAt(bounce[:want], off)
		if got < c {
			if err == nil || errors.Is(err, io.EOF) {
				err = fmt.Errorf("file shorter than the node: %w", io.ErrUnexpectedEOF)
			}
			return err
		}
		copy(p[:c], bounce)
		p = p[c:]
		off += int64(c)
	}
	return nil
}

// Pwrite stores p at off; with FUA it calls fdatasync before returning. A
// write past Size is block.ErrOutOfRange unless the node is Growable (and a
// regular file): the file and Size then grow to off+len(p). A failed write
// may have stored part of p.
func (n *Node) Pwrite(p []byte, off int64, flags block.Flags) error {
	length := int64(len(p))
	end := off + length
	grow := n.opts.Growable && !n.isDevice && off >= 0 && end >= off && end > n.size.Load()
	var err error
	if grow {
		err = n.check("pwrite", 0, 0, true) // open and writable; any offset
	} else {
		err = n.check("pwrite", off, length, true)
	}
	if err != nil {
		return err
	}
	switch {
	case length == 0:
	case !n.opts.Direct:
		_, err = n.f.WriteAt(p, off)
	case !n.directOK(off, length, false):
		_, err = n.buffered.WriteAt(p, off)
	case memAligned(p, n.directMemAlign):
		_, err = n.f.WriteAt(p, off)
	default:
		err = n.writeBounced(p, off)
	}
	if err == nil && grow {
		n.growTo(end)
	}
	if err == nil && flags.Has(block.FUA) {
		err = fdatasync(n.f)
	}
	if err != nil {
		return n.opError("pwrite", off, length, err)
	}
	return nil
}

// growTo raises the size to end unless it is already larger.
func (n *Node) growTo(end int64) {
	for {
		cur := n.size.Load()
		if cur >= end || n.size.CompareAndSwap(cur, end) {
			return
		}
	}
}

// writeBounced writes through aligned bounce buffers with O_DIRECT.
// Preconditions: directOK(off, len(p), false).
func (n *Node) writeBounced(p []byte, off int64) error {
	bp := bouncePool.Get().(*[]byte)
	defer bouncePool.Put(bp)
	bounce := *bp
	for len(p) > 0 {
		c := copy(bounce, p)
		if _, err := n.f.WriteAt(bounce[:c], off); err != nil {
			return err
		}
		p = p[c:]
		off += int64(c)
	}
	return nil
}

func roundUp(v, a int64) int64 { return (v + a - 1) / a * a }

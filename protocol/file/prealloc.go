package file

import "github.com/thinblk/thinblk/block"

// reserveFrom is the file offset below which reservations are ignored.
// ext4 places an allocation that ends in the first 8 MiB of a file in an
// aligned power-of-two window (mballoc's request normalization), so
// separately reserved runs there scatter into many extents, where delayed
// allocation would have laid them out in one at writeback; past that,
// requests are placed as asked, next to each other.
const reserveFrom = 8 << 20

// Preallocate reserves [off, off+length) on a regular file with fallocate
// (KEEP_SIZE: the size never changes, so a range past the end of a growable
// node is reserved for the write that will grow it). It implements
// block.Preallocator: a hint that changes no byte read; on a block device,
// a file system without fallocate, or for a range starting in the first
// reserveFrom bytes, it does nothing.
func (n *Node) Preallocate(off, length int64) error {
	var err error
	if n.opts.Growable && !n.isDevice && off >= 0 && length >= 0 && off+length >= off {
		err = n.check("preallocate", 0, 0, true)
	} else {
		err = n.check("preallocate", off, length, true)
	}
	if err != nil || length == 0 || n.isDevice || !sparseSupport || n.noPrealloc.Load() || off < reserveFrom {
		return err
	}
	err = preallocate(n.f, off, length)
	if isNotSupported(err) {
		n.noPrealloc.Store(true)
		return nil
	}
	if err != nil {
		return n.opError("preallocate", off, length, err)
	}
	return nil
}

var _ block.Preallocator = (*Node)(nil)

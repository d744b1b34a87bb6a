package file

import (
	"errors"

	"github.com/thinblk/thinblk/block"
)

// errFallback says no native way of zeroing is left: the caller writes
// zero bytes (or fails under NoFallback).
var errFallback = errors.New("no native write-zeroes")

// Discard deallocates [off, off+length) when the node was opened with
// Options.Discard, and does nothing otherwise. On a regular file it punches
// a hole and the range reads as zeros; should the filesystem refuse holes,
// the range is zeroed instead to keep Caps().DiscardZeroes true. On a block
// device it issues BLKDISCARD for the whole discard granules inside the
// range (the rest is left alone) and the contents are undefined afterwards.
// With FUA the result is made durable before returning.
func (n *Node) Discard(off, length int64, flags block.Flags) error {
	if err := n.check("discard", off, length, true); err != nil {
		return err
	}
	if length == 0 || !n.opts.Discard || !sparseSupport {
		return nil
	}
	var err error
	if n.isDevice {
		err = n.discardDevice(off, length)
	} else {
		err = n.discardFile(off, length)
	}
	if errors.Is(err, errFallback) {
		return block.WriteZeroesFallback(n, off, length, flags&block.FUA)
	}
	if err == nil && flags.Has(block.FUA) {
		err = fdatasync(n.f)
	}
	if err != nil {
		return n.opError("discard", off, length, err)
	}
	return nil
}

func (n *Node) discardFile(off, length int64) error {
	if !n.noPunch.Load() {
		err := punchHole(n.f, off, length)
		if !isNotSupported(err) {
			return err
		}
		n.noPunch.Store(true)
	}
	return n.zeroFile(off, length, 0)
}

func (n *Node) discardDevice(off, length int64) error {
	if n.dev.discardMax == 0 || n.noDiscard.Load() {
		return nil
	}
	g := max(n.dev.discardGranularity, n.dev.logicalBlock)
	start, end := roundUp(off, g), (off+length)/g*g
	if end <= start {
		return nil
	}
	err := blkDiscard(n.f, start, end-start)
	if isNotSupported(err) {
		n.noDiscard.Store(true)
		return nil
	}
	return err
}

// WriteZeroes makes [off, off+length) read as zeros.
//
// On a regular file: with MayUnmap (and Options.Discard) it punches a hole;
// otherwise it uses fallocate ZERO_RANGE, which keeps the blocks allocated;
// where the filesystem lacks ZERO_RANGE it punches a hole and allocates it
// again. On a block device: with MayUnmap (and Options.Discard) it asks the
// device to zero without writing, possibly unmapping (fallocate
// PUNCH_HOLE on the device); otherwise BLKZEROOUT. Parts of the range that
// are not aligned to the logical block size are written as zero bytes.
//
// When no native way works it writes zero bytes, or with NoFallback fails
// with block.ErrNotSupported. With FUA the zeros are durable on return.
func (n *Node) WriteZeroes(off, length int64, flags block.Flags) error {
	if err := n.check("write-zeroes", off, length, true); err != nil {
		return err
	}
	if length == 0 {
		return nil
	}
	var err error
	if n.isDevice {
		err = n.zeroDevice(off, length, flags)
	} else {
		err = n.zeroFile(off, length, flags)
	}
	if errors.Is(err, errFallback) {
		return block.WriteZeroesFallback(n, off, length, flags)
	}
	if err == nil && flags.Has(block.FUA) {
		err = fdatasync(n.f)
	}
	if err != nil {
		return n.opError("write-zeroes", off, length, err)
	}
	return nil
}

// zeroFile zeroes a range of a regular file natively, or returns
// errFallback.
func (n *Node) zeroFile(off, length int64, flags block.Flags) error {
	if !sparseSupport {
		return errFallback
	}
	unmap := flags.Has(block.MayUnmap) && n.opts.Discard
	if unmap && !n.noPunch.Load() {
		err := punchHole(n.f, off, length)
		if !isNotSupported(err) {
			return err
		}
		n.noPunch.Store(true)
	}
	if !n.noZeroRange.Load() {
		err := zeroRange(n.f, off, length)
		if !isNotSupported(err) {
			return err
		}
		n.noZeroRange.Store(true)
	}
	if !n.noPunch.Load() {
		// No ZERO_RANGE (tmpfs, some network filesystems): punch, then
		// reserve the blocks again unless unmapping was allowed.
		err := punchHole(n.f, off, length)
		if err == nil {
			if !unmap {
				if err := allocate(n.f, off, length); err != nil && !isNotSupported(err) {
					return err
				}
			}
			return nil
		}
		if !isNotSupported(err) {
			return err
		}
		n.noPunch.Store(true)
	}
	return errFallback
}

// zeroDevice zeroes a range of a block device natively, writing zero bytes
// only for the parts not aligned to the logical block, or returns
// errFallback.
func (n *Node) zeroDevice(off, length int64, flags block.Flags) error {
	if !sparseSupport {
		return errFallback
	}
	lb := n.dev.logicalBlock
	start, end := roundUp(off, lb), (off+length)/lb*lb
	if end <= start || start != off || end != off+length {
		if flags.Has(block.NoFallback) {
			return errFallback
		}
		// Zero the unaligned head and tail with written zeros.
		if end <= start {
			return errFallback
		}
		if start > off {
			if err := block.WriteZeroesFallback(n, off, start-off, 0); err != nil {
				return err
			}
		}
		if end < off+length {
			if err := block.WriteZeroesFallback(n, end, off+length-end, 0); err != nil {
				return err
			}
		}
	}
	if flags.Has(block.MayUnmap) && n.opts.Discard && n.dev.writeZeroesMax > 0 && !n.noPunch.Load() {
		err := punchHole(n.f, start, end-start)
		if !isNotSupported(err) {
			return err
		}
		n.noPunch.Store(true)
	}
	if flags.Has(block.NoFallback) && n.dev.writeZeroesMax == 0 {
		return errFallback
	}
	err := blkZeroout(n.f, start, end-start)
	if isNotSupported(err) {
		return errFallback
	}
	return err
}

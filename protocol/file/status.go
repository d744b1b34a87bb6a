package file

import (
	"errors"
	"fmt"

	"github.com/thinblk/thinblk/block"
)

// BlockStatus returns the run starting at off (at most length bytes) that is
// all data or all hole. On a regular file data is Data|Allocated; a hole
// (SEEK_DATA's answer) is Zero, and Zero|Allocated (anchored) where the
// filesystem keeps storage reserved for it (fallocated or zero-range'd
// unwritten extents, found with FIEMAP). A block device, or a filesystem
// without SEEK_DATA, is all Data|Allocated. HostOffset is off. length must be
// > 0.
func (n *Node) BlockStatus(off, length int64) (block.Extent, error) {
	if err := n.check("block-status", off, length, false); err != nil {
		return block.Extent{}, err
	}
	if length == 0 {
		return block.Extent{}, &block.OpError{Op: "block-status", Node: n.name, Off: off, Err: fmt.Errorf("%w: zero length", block.ErrInvalid)}
	}
	end := off + length
	data := block.Extent{Off: off, Len: length, Status: block.Data | block.Allocated, HostOffset: off}
	if n.isDevice || !sparseSupport || n.noSeekData.Load() {
		return data, nil
	}
	dataOff, err := seekData(n.f, off)
	switch {
	case errors.Is(err, errNoData):
		return n.holeStatus(off, length), nil
	case isNotSupported(err) || errors.Is(err, errInvalidFlag):
		n.noSeekData.Store(true)
		return data, nil
	case err != nil:
		return block.Extent{}, n.opError("block-status", off, length, err)
	case dataOff > off:
		return n.holeStatus(off, min(dataOff, end)-off), nil
	}
	holeOff, err := seekHole(n.f, off)
	if err != nil {
		return block.Extent{}, n.opError("block-status", off, length, err)
	}
	if holeOff > off {
		data.Len = min(holeOff, end) - off
	}
	return data, nil
}

// holeStatus describes the start of a hole [off, off+length) that SEEK_DATA
// found: Zero|Allocated up to the end of a reserved (unwritten) extent that
// covers off, else Zero up to the next one. Without FIEMAP the whole hole is
// Zero.
func (n *Node) holeStatus(off, length int64) block.Extent {
	hole := block.Extent{Off: off, Len: length, Status: block.Zero, HostOffset: off}
	if n.noFiemap.Load() {
		return hole
	}
	start, extLen, found, err := firstExtent(n.f, off, length)
	switch {
	case err != nil:
		n.noFiemap.Store(true)
	case !found:
	case start <= off:
		hole.Status |= block.Allocated
		hole.Len = min(length, start+extLen-off)
	default:
		hole.Len = min(length, start-off)
	}
	return hole
}

// Info reports the format ("file" or "host_device"), the size, the bytes
// allocated on the host (st_blocks*512 for a regular file, -1 for a device)
// and the watermark: the end of the last data extent of a regular file (0
// when it has none), the size of a device.
func (n *Node) Info() (block.Info, error) {
	if n.closed.Load() {
		return block.Info{}, &block.OpError{Op: "info", Node: n.name, Err: block.ErrClosed}
	}
	size := n.size.Load()
	info := block.Info{
		Format:               "file",
		VirtualSize:          size,
		AllocatedBytes:       -1,
		Watermark:            size,
		UnallocatedReadsZero: true,
		ZeroUnmapDeallocates: n.Caps().ZeroUnmap,
	}
	if n.isDevice {
		info.Format = "host_device"
		return info, nil
	}
	alloc, err := allocatedBytes(n.f)
	if err != nil {
		return block.Info{}, n.opError("info", 0, 0, err)
	}
	info.AllocatedBytes = alloc
	w, err := n.watermark(size)
	if err != nil {
		return block.Info{}, err
	}
	info.Watermark = w
	return info, nil
}

// watermark returns the end of the last data run below size.
func (n *Node) watermark(size int64) (int64, error) {
	var last int64
	for off := int64(0); off < size; {
		e, err := n.BlockStatus(off, size-off)
		if err != nil {
			return 0, err
		}
		if e.Status&block.Data != 0 {
			last = e.End()
		}
		off = e.End()
	}
	return last, nil
}

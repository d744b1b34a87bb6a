package file

import (
	"fmt"

	"github.com/thinblk/thinblk/block"
)

// Options control how Open opens a file.
type Options struct {
	// ReadOnly opens the file read-only; every mutating call then fails
	// with block.ErrReadOnly.
	ReadOnly bool
	// Direct opens the file with O_DIRECT (cache=none). See the package
	// documentation on alignment.
	Direct bool
	// Discard lets Discard deallocate (punch holes, BLKDISCARD) and lets
	// WriteZeroes(MayUnmap) deallocate instead of writing. When false,
	// Discard does nothing and MayUnmap is ignored, as with QEMU's
	// discard=ignore. Callers that apply the discard policy above this node
	// (block.WithPolicy) should set it.
	Discard bool
	// Growable lets a Pwrite that ends past Size extend a regular file and
	// the node (formats that allocate at the end of their file). It has no
	// effect on block devices.
	Growable bool

	// Locking is the image locking mode, as QEMU's file driver option
	// "locking": LockAuto (also "") takes QEMU-compatible OFD locks where
	// the kernel has them, LockOn fails where it has not, LockOff takes
	// none. See lock.go for the scheme.
	Locking string
	// Perm is the set of permissions the opener uses. Zero means the
	// default: PermConsistentRead, plus PermWrite unless ReadOnly (none at
	// all with NoIO). Formats that write metadata add PermResize, as QEMU.
	Perm Perm
	// Unshare is the set of permissions refused to other processes while
	// the node is open (QEMU: formats with metadata refuse PermWrite and
	// PermResize). Zero refuses nothing.
	Unshare Perm
	// NoIO says the opener reads no data, only metadata (qemu-img info,
	// QEMU's BDRV_O_NO_IO): with a zero Perm no permission is taken.
	NoIO bool
	// ForceShare (-U) refuses nothing to others, whatever Unshare says,
	// so the node opens while another process writes the file. Only with
	// ReadOnly; Open fails with block.ErrInvalid otherwise.
	ForceShare bool
}

// Preallocation modes of Create.
const (
	PreallocOff    = "off"    // sparse: the file is one hole
	PreallocFalloc = "falloc" // fallocate reserves the blocks (they read zero, SEEK_DATA sees a hole)
	PreallocFull   = "full"   // zeros are written
)

// parsePrealloc checks a preallocation mode; "" means off.
func parsePrealloc(mode string) (string, error) {
	switch mode {
	case "", PreallocOff:
		return PreallocOff, nil
	case PreallocFalloc, PreallocFull:
		return mode, nil
	}
	return "", fmt.Errorf("%w: preallocation %q (want off, falloc or full)", block.ErrInvalid, mode)
}

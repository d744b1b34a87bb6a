//go:build linux

package file

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// FIEMAP, from linux/fiemap.h and linux/fs.h.
const (
	fsIocFiemap         = 0xC020660B // _IOWR('f', 11, struct fiemap)
	fiemapExtentUnknown = 0x00000002 // location not known yet (delalloc)
	fiemapHeaderWords   = 4          // struct fiemap without extents: 32 bytes
	fiemapExtentWords   = 7          // struct fiemap_extent: 56 bytes
)

// firstExtent returns the first extent of f's block map that overlaps
// [off, off+n): its logical start and length, and whether one exists. Only
// extents with a known location count: reserved storage, written or
// unwritten (fallocated, ZERO_RANGE'd).
func firstExtent(f *os.File, off, n int64) (start, length int64, found bool, err error) {
	// struct fiemap with room for one struct fiemap_extent, 8-byte aligned.
	var buf [fiemapHeaderWords + fiemapExtentWords]uint64
	buf[0] = uint64(off) // fm_start
	buf[1] = uint64(n)   // fm_length
	// buf[2]: fm_flags = 0, fm_mapped_extents = 0 (out)
	buf[3] = 1 // fm_extent_count = 1, fm_reserved = 0 (little-endian low word)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), fsIocFiemap, uintptr(unsafe.Pointer(&buf[0])))
	if errno != 0 {
		return 0, 0, false, errno
	}
	mapped := uint32(buf[2] >> 32)
	if mapped == 0 {
		return 0, 0, false, nil
	}
	ext := buf[fiemapHeaderWords:]
	flags := uint32(ext[5]) // fe_flags follows fe_reserved64[2]
	if flags&fiemapExtentUnknown != 0 {
		return 0, 0, false, nil
	}
	return int64(ext[0]), int64(ext[2]), true, nil
}

//go:build linux

package file

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/thinblk/thinblk/block"
)

// oDirect is the open flag for direct I/O.
const oDirect = unix.O_DIRECT

// fdatasync flushes the file's data (and the metadata needed to read it).
func fdatasync(f *os.File) error {
	return ignoringEINTR(func() error { return unix.Fdatasync(int(f.Fd())) })
}

// punchHole deallocates [off, off+n) keeping the size; the range reads zeros.
func punchHole(f *os.File, off, n int64) error {
	return fallocate(f, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
}

// zeroRange zeroes [off, off+n) without writing data, keeping the size.
func zeroRange(f *os.File, off, n int64) error {
	return fallocate(f, unix.FALLOC_FL_ZERO_RANGE|unix.FALLOC_FL_KEEP_SIZE, off, n)
}

// allocate reserves [off, off+n) (fallocate mode 0, growing the file when
// the range ends past it).
func allocate(f *os.File, off, n int64) error { return fallocate(f, 0, off, n) }

// preallocate reserves [off, off+n) keeping the size (blocks past the end
// stay reserved for the write that grows the file).
func preallocate(f *os.File, off, n int64) error {
	return fallocate(f, unix.FALLOC_FL_KEEP_SIZE, off, n)
}

func fallocate(f *os.File, mode uint32, off, n int64) error {
	return ignoringEINTR(func() error { return unix.Fallocate(int(f.Fd()), mode, off, n) })
}

// errNoData is returned by seekData when there is no data at or after off.
var errNoData = errors.New("no data after offset")

// seekData returns the first data offset at or after off (errNoData when
// none). Filesystems without SEEK_DATA give the generic answer: all data.
func seekData(f *os.File, off int64) (int64, error) {
	pos, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
	if errors.Is(err, unix.ENXIO) {
		return 0, errNoData
	}
	return pos, err
}

// seekHole returns the first hole offset at or after off (the file's end
// counts as a hole).
func seekHole(f *os.File, off int64) (int64, error) {
	return unix.Seek(int(f.Fd()), off, unix.SEEK_HOLE)
}

// hostBlockSize returns the filesystem's preferred block size for fi.
func hostBlockSize(fi os.FileInfo) int64 {
	if st, ok := fi.Sys().(*unix.Stat_t); ok && st.Blksize > 0 {
		return int64(st.Blksize)
	}
	if st, ok := fi.Sys().(interface{ BlockSize() int64 }); ok {
		return st.BlockSize()
	}
	return 4096
}

// allocatedBytes returns st_blocks*512 of an open file.
func allocatedBytes(f *os.File) (int64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, err
	}
	return st.Blocks * 512, nil
}

// directAlign returns the offset and memory alignment O_DIRECT needs on a
// regular file (statx STATX_DIOALIGN), falling back to 4096 for both when the
// kernel or filesystem does not say.
func directAlign(f *os.File) (offAlign, memAlign int64) {
	var st unix.Statx_t
	err := unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH, unix.STATX_DIOALIGN, &st)
	if err != nil || st.Mask&unix.STATX_DIOALIGN == 0 || st.Dio_offset_align == 0 {
		return 4096, 4096
	}
	return int64(st.Dio_offset_align), max(int64(st.Dio_mem_align), 1)
}

// device describes a block device.
type device struct {
	size          int64
	logicalBlock  int64
	physicalBlock int64
	// From sysfs; 0 when absent or unknown.
	discardGranularity  int64
	discardMax          int64
	writeZeroesMax      int64
	writeZeroesUnmapMax int64 // -1 when the kernel has no such attribute
	optimalIO           int64
	dmaAlign            int64
}

// probeDevice asks the kernel about the block device f.
func probeDevice(f *os.File) (device, error) {
	fd := int(f.Fd())
	size, err := unix.IoctlGetUint64(fd, unix.BLKGETSIZE64)
	if err != nil {
		return device{}, fmt.Errorf("BLKGETSIZE64: %w", err)
	}
	d := device{size: int64(size), logicalBlock: 512, physicalBlock: 512, writeZeroesUnmapMax: -1}
	if v, err := unix.IoctlGetInt(fd, unix.BLKSSZGET); err == nil && v > 0 {
		d.logicalBlock = int64(v)
	}
	if v, err := unix.IoctlGetInt(fd, unix.BLKPBSZGET); err == nil && v > 0 {
		d.physicalBlock = int64(v)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return device{}, err
	}
	dir := queueDir(unix.Major(st.Rdev), unix.Minor(st.Rdev))
	if dir == "" {
		return d, nil
	}
	d.discardGranularity = readSysfsInt(dir, "discard_granularity")
	d.discardMax = readSysfsInt(dir, "discard_max_bytes")
	d.writeZeroesMax = readSysfsInt(dir, "write_zeroes_max_bytes")
	if _, err := os.Stat(filepath.Join(dir, "write_zeroes_unmap_max_bytes")); err == nil {
		d.writeZeroesUnmapMax = readSysfsInt(dir, "write_zeroes_unmap_max_bytes")
	}
	d.optimalIO = readSysfsInt(dir, "optimal_io_size")
	if a := readSysfsInt(dir, "dma_alignment"); a > 0 {
		d.dmaAlign = a + 1 // sysfs gives the mask
	}
	return d, nil
}

// queueDir finds the queue folder of a device in sysfs: its own for a whole
// disk, its parent's for a partition. It returns "" when there is none.
func queueDir(major, minor uint32) string {
	base := fmt.Sprintf("/sys/dev/block/%d:%d", major, minor)
	for _, dir := range []string{base + "/queue", base + "/../queue"} {
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			return dir
		}
	}
	return ""
}

func readSysfsInt(dir, name string) int64 {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return 0
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || v < 0 {
		return 0
	}
	return v
}

// blkDiscard discards [off, off+n) of a block device (BLKDISCARD); off and n
// must be multiples of the logical block size.
func blkDiscard(f *os.File, off, n int64) error {
	return rangeIoctl(f, unix.BLKDISCARD, off, n)
}

// blkZeroout zeroes [off, off+n) of a block device (BLKZEROOUT, which the
// kernel never turns into a deallocation); off and n must be multiples of the
// logical block size.
func blkZeroout(f *os.File, off, n int64) error {
	return rangeIoctl(f, unix.BLKZEROOUT, off, n)
}

func rangeIoctl(f *os.File, req uint, off, n int64) error {
	r := [2]uint64{uint64(off), uint64(n)}
	return ignoringEINTR(func() error {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), uintptr(req), uintptr(unsafe.Pointer(&r[0])))
		if errno != 0 {
			return errno
		}
		return nil
	})
}

// isNotSupported reports whether err says the kernel or filesystem does not
// do the operation.
func isNotSupported(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.ENOTTY)
}

func ignoringEINTR(fn func() error) error {
	for {
		err := fn()
		if err != unix.EINTR {
			return err
		}
	}
}

// platformErr adds the block sentinel that matches a host error.
func platformErr(err error) error {
	switch {
	case errors.Is(err, unix.ENOSPC), errors.Is(err, unix.EDQUOT):
		return fmt.Errorf("%w: %w", block.ErrNoSpace, err)
	case errors.Is(err, unix.EROFS), errors.Is(err, unix.EBADF):
		return fmt.Errorf("%w: %w", block.ErrReadOnly, err)
	case isNotSupported(err):
		return fmt.Errorf("%w: %w", block.ErrNotSupported, err)
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("%w: %w", block.ErrInvalid, err)
	}
	return err
}

// isBlockDevice reports whether fi is a block device.
func isBlockDevice(fi os.FileInfo) bool {
	return fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0
}

// sparseSupport says the platform has fallocate and SEEK_DATA/SEEK_HOLE.
const sparseSupport = true

// errInvalidFlag is what open returns for a flag the filesystem refuses.
var errInvalidFlag error = unix.EINVAL

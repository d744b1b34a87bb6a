//go:build !linux

package file

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/thinblk/thinblk/block"
)

// The portable twin of sys_linux.go: no direct I/O, no fallocate, no
// SEEK_DATA, no block devices. Requests that need them fall back or report
// block.ErrNotSupported.

const oDirect = 0

const sparseSupport = false

var errInvalidFlag error = syscall.EINVAL

var errNoData = errors.New("no data after offset")

var errNoPlatform = fmt.Errorf("%w on this platform", block.ErrNotSupported)

func fdatasync(f *os.File) error { return f.Sync() }

func punchHole(f *os.File, off, n int64) error   { return errNoPlatform }
func zeroRange(f *os.File, off, n int64) error   { return errNoPlatform }
func allocate(f *os.File, off, n int64) error    { return errNoPlatform }
func preallocate(f *os.File, off, n int64) error { return errNoPlatform }

func seekData(f *os.File, off int64) (int64, error) { return 0, errNoPlatform }
func seekHole(f *os.File, off int64) (int64, error) { return 0, errNoPlatform }

func hostBlockSize(fi os.FileInfo) int64 { return 4096 }

func allocatedBytes(f *os.File) (int64, error) { return -1, nil }

func directAlign(f *os.File) (offAlign, memAlign int64) { return 4096, 4096 }

type device struct {
	size                int64
	logicalBlock        int64
	physicalBlock       int64
	discardGranularity  int64
	discardMax          int64
	writeZeroesMax      int64
	writeZeroesUnmapMax int64
	optimalIO           int64
	dmaAlign            int64
}

func probeDevice(f *os.File) (device, error) {
	return device{}, fmt.Errorf("block devices: %w", errNoPlatform)
}

func blkDiscard(f *os.File, off, n int64) error { return errNoPlatform }
func blkZeroout(f *os.File, off, n int64) error { return errNoPlatform }

func isNotSupported(err error) bool {
	return errors.Is(err, block.ErrNotSupported) || errors.Is(err, syscall.ENOTSUP) || errors.Is(err, syscall.EOPNOTSUPP)
}

func platformErr(err error) error {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("%w: %w", block.ErrNoSpace, err)
	case errors.Is(err, syscall.EROFS), errors.Is(err, syscall.EBADF):
		return fmt.Errorf("%w: %w", block.ErrReadOnly, err)
	}
	return err
}

func isBlockDevice(fi os.FileInfo) bool {
	return fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0
}

func firstExtent(f *os.File, off, n int64) (start, length int64, found bool, err error) {
	return 0, 0, false, errNoPlatform
}

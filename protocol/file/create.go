package file

import (
	"fmt"
	"io/fs"
	"os"

	"github.com/thinblk/thinblk/block"
)

// Create makes name a file of size bytes that reads as zeros, creating it or
// truncating an existing file, with the preallocation mode prealloc ("" or
// "off": sparse; "falloc": blocks reserved with fallocate; "full": zeros
// written). An existing file that another process has open (an image lock,
// see Perm) is refused, not truncated. An existing block device is not
// truncated: Create checks that it holds size bytes and leaves its
// contents alone. Create does not sync.
// On failure a partly created file may remain.
func Create(name string, size int64, prealloc string) (err error) {
	mode, err := parsePrealloc(prealloc)
	if err != nil {
		return &fs.PathError{Op: "create", Path: name, Err: err}
	}
	if size < 0 {
		return &fs.PathError{Op: "create", Path: name, Err: fmt.Errorf("%w: negative size %d", block.ErrInvalid, size)}
	}
	if fi, err := os.Stat(name); err == nil && isBlockDevice(fi) {
		return createOnDevice(name, size)
	}
	// Not O_TRUNC: an image another process has open must not be cut
	// under it. Lock first (as qemu-img create does), then truncate.
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	release, err := lockForCreate(f, name)
	if err != nil {
		return err
	}
	defer release()
	if err := f.Truncate(0); err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		return err
	}
	switch {
	case size == 0 || mode == PreallocOff:
	case mode == PreallocFalloc:
		if err := allocate(f, 0, size); err != nil {
			return &fs.PathError{Op: "fallocate", Path: name, Err: platformErr(err)}
		}
	case mode == PreallocFull:
		for off := int64(0); off < size; {
			c := min(size-off, 1<<20)
			if _, err := f.WriteAt(block.ZeroBuffer(int(c)), off); err != nil {
				return err
			}
			off += c
		}
	}
	return nil
}

// createOnDevice checks that the block device name can hold size bytes.
func createOnDevice(name string, size int64) error {
	n, err := Open(name, Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer n.Close()
	if n.Size() < size {
		return &fs.PathError{Op: "create", Path: name, Err: fmt.Errorf("%w: device holds %d bytes, %d asked", block.ErrNoSpace, n.Size(), size)}
	}
	return nil
}

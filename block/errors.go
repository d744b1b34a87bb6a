package block

import (
	"errors"
	"fmt"
)

// Sentinel errors. Drivers wrap them (with %w or OpError); callers test with
// errors.Is.
var (
	ErrNotSupported = errors.New("operation not supported")
	ErrOutOfRange   = errors.New("request out of range")
	ErrReadOnly     = errors.New("read-only")
	ErrNoSpace      = errors.New("no space left")
	ErrCorrupt      = errors.New("image is corrupt")
	ErrInvalid      = errors.New("invalid argument")
	ErrClosed       = errors.New("node is closed")
)

// OpError records a failed request: the operation, the node's name, the
// range, and the cause.
type OpError struct {
	Op   string // "pread", "pwrite", "discard", "write-zeroes", "block-status", "flush", ...
	Node string // a file name or node description
	Off  int64
	Len  int64
	Err  error
}

func (e *OpError) Error() string {
	if e.Len == 0 && e.Off == 0 {
		return fmt.Sprintf("%s %s: %v", e.Op, e.Node, e.Err)
	}
	return fmt.Sprintf("%s %s at offset %d length %d: %v", e.Op, e.Node, e.Off, e.Len, e.Err)
}

func (e *OpError) Unwrap() error { return e.Err }

// CheckRange validates a request of n bytes at off against a node of the
// given size: off >= 0, n >= 0, off+n <= size without overflow.
func CheckRange(off, n, size int64) error {
	if off < 0 || n < 0 || off > size || n > size-off {
		return fmt.Errorf("%w: offset %d length %d, size %d", ErrOutOfRange, off, n, size)
	}
	return nil
}

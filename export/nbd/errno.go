package nbd

import (
	"errors"
	"syscall"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/internal/nbdwire"
)

// errnoTable is the one mapping from block errors to NBD error values,
// checked in order; anything else is EIO.
var errnoTable = []struct {
	err   error
	errno uint32
}{
	{block.ErrReadOnly, nbdwire.EPERM},
	{syscall.EPERM, nbdwire.EPERM},
	{syscall.EROFS, nbdwire.EPERM},
	{block.ErrNoSpace, nbdwire.ENOSPC},
	{syscall.ENOSPC, nbdwire.ENOSPC},
	{syscall.EDQUOT, nbdwire.ENOSPC},
	{syscall.EFBIG, nbdwire.ENOSPC},
	{block.ErrNotSupported, nbdwire.ENOTSUP},
	{block.ErrOutOfRange, nbdwire.EINVAL},
	{block.ErrInvalid, nbdwire.EINVAL},
	{block.ErrClosed, nbdwire.ESHUTDOWN},
	{syscall.ENOMEM, nbdwire.ENOMEM},
}

// Errno maps an error from a node to the NBD error value sent to clients:
// EPERM (read-only), ENOSPC (no space), ENOTSUP (not supported), EINVAL
// (out of range, invalid), ESHUTDOWN (node closed), else EIO.
func Errno(err error) uint32 {
	if err == nil {
		return 0
	}
	var e nbdwire.Errno
	if errors.As(err, &e) && e != 0 {
		return uint32(e)
	}
	for _, m := range errnoTable {
		if errors.Is(err, m.err) {
			return m.errno
		}
	}
	return nbdwire.EIO
}

package nbdwire

import (
	"errors"
	"fmt"
)

// ErrMalformed is wrapped by every decoder error: the bytes do not follow
// the protocol (bad magic, bad length, a field out of range).
var ErrMalformed = errors.New("malformed NBD message")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// Errno is an NBD error value received from or sent to a peer.
type Errno uint32

func (e Errno) Error() string {
	switch uint32(e) {
	case EPERM:
		return "NBD_EPERM: operation not permitted"
	case EIO:
		return "NBD_EIO: input/output error"
	case ENOMEM:
		return "NBD_ENOMEM: cannot allocate memory"
	case EINVAL:
		return "NBD_EINVAL: invalid argument"
	case ENOSPC:
		return "NBD_ENOSPC: no space left on device"
	case EOVERFLOW:
		return "NBD_EOVERFLOW: value too large"
	case ENOTSUP:
		return "NBD_ENOTSUP: operation not supported"
	case ESHUTDOWN:
		return "NBD_ESHUTDOWN: server is shutting down"
	}
	return fmt.Sprintf("NBD error %d", uint32(e))
}

// OptionError is an error reply to an option (NBD_REP_ERR_*), with the
// server's message if it sent one.
type OptionError struct {
	Option  uint32
	Type    uint32
	Message string
}

func (e *OptionError) Error() string {
	name := map[uint32]string{
		RepErrUnsup: "unsupported", RepErrPolicy: "refused by policy",
		RepErrInvalid: "invalid", RepErrPlatform: "not supported on this platform",
		RepErrTLSReqd: "TLS required", RepErrUnknown: "unknown export",
		RepErrShutdown: "server shutting down", RepErrBlockSizeReqd: "block size required",
		RepErrTooBig: "too big", RepErrExtHeaderReqd: "extended headers required",
	}[e.Type]
	if name == "" {
		name = fmt.Sprintf("error %#x", e.Type)
	}
	if e.Message != "" {
		return fmt.Sprintf("NBD option %d: %s: %s", e.Option, name, e.Message)
	}
	return fmt.Sprintf("NBD option %d: %s", e.Option, name)
}

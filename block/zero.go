package block

import (
	"encoding/binary"
	"fmt"
)

// IsZero reports whether every byte of p is zero. It checks eight bytes at a
// time.
func IsZero(p []byte) bool {
	for len(p) >= 64 {
		if binary.LittleEndian.Uint64(p)|binary.LittleEndian.Uint64(p[8:])|
			binary.LittleEndian.Uint64(p[16:])|binary.LittleEndian.Uint64(p[24:])|
			binary.LittleEndian.Uint64(p[32:])|binary.LittleEndian.Uint64(p[40:])|
			binary.LittleEndian.Uint64(p[48:])|binary.LittleEndian.Uint64(p[56:]) != 0 {
			return false
		}
		p = p[64:]
	}
	for _, b := range p {
		if b != 0 {
			return false
		}
	}
	return true
}

// zeroBufSize is the chunk WriteZeroesFallback writes at a time.
const zeroBufSize = 1 << 20

var zeroBuf = make([]byte, zeroBufSize)

// ZeroBuffer returns a read-only slice of n zero bytes, n <= 1 MiB. Callers
// must never write into it.
func ZeroBuffer(n int) []byte { return zeroBuf[:n] }

// WriteZeroesFallback writes zero bytes to [off, off+n) with Pwrite, in
// chunks of at most 1 MiB (and MaxTransfer), unless flags has NoFallback, in
// which case it returns ErrNotSupported. It is the one place where a zeroing
// request becomes written zeros.
func WriteZeroesFallback(d Driver, off, n int64, flags Flags) error {
	if flags.Has(NoFallback) {
		return fmt.Errorf("write-zeroes without fallback: %w", ErrNotSupported)
	}
	chunk := int64(zeroBufSize)
	if mt := d.Limits().MaxTransfer; mt > 0 && mt < chunk {
		chunk = mt
	}
	wflags := flags & FUA
	for n > 0 {
		c := min(n, chunk)
		if err := d.Pwrite(zeroBuf[:c], off, wflags); err != nil {
			return err
		}
		off += c
		n -= c
	}
	return nil
}

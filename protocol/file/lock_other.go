//go:build !linux

package file

import "os"

// The portable twin of lock_linux.go: no OFD locks, so LockAuto takes no
// locks and LockOn fails with block.ErrNotSupported.

func lockKeyOf(f *os.File) (lockKey, error)        { return lockKey{}, errNoPlatform }
func dupLockFile(f *os.File) (*os.File, error)     { return nil, errNoPlatform }
func ofdLock(f *os.File, b int64, lock bool) error { return errNoPlatform }
func ofdHeldElsewhere(f *os.File, b int64) (bool, error) {
	return false, errNoPlatform
}
func ofdSupported(f *os.File) bool { return false }

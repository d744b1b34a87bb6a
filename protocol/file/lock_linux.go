//go:build linux

package file

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// lockKeyOf returns the identity of the inode f is open on.
func lockKeyOf(f *os.File) (lockKey, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return lockKey{}, err
	}
	return lockKey{dev: uint64(st.Dev), ino: st.Ino}, nil
}

// dupLockFile returns a close-on-exec duplicate of f: a second descriptor
// on the same open file description, which keeps the description (and the
// OFD locks on it) alive after f is closed, and which child processes do not
// inherit.
func dupLockFile(f *os.File) (*os.File, error) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// ofdLock takes (lock) or drops (!lock) a shared OFD lock on byte b of f.
// Taking fails (EAGAIN) only when another description holds a write lock
// there, which QEMU never takes.
func ofdLock(f *os.File, b int64, lock bool) error {
	lk := unix.Flock_t{Type: unix.F_UNLCK, Whence: 0, Start: b, Len: 1}
	if lock {
		lk.Type = unix.F_RDLCK
	}
	return ignoringEINTR(func() error { return unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk) })
}

// ofdHeldElsewhere reports whether another open file description (of this
// or another process) holds a lock on byte b of f: the F_OFD_GETLK test of
// a write lock, which any shared lock conflicts with. Locks on f's own
// description do not count.
func ofdHeldElsewhere(f *os.File, b int64) (bool, error) {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: b, Len: 1}
	if err := ignoringEINTR(func() error { return unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, &lk) }); err != nil {
		return false, err
	}
	return lk.Type != unix.F_UNLCK, nil
}

// ofdSupported reports whether the kernel has OFD locks (Linux 3.15+), by
// asking F_OFD_GETLK on f: EINVAL means it does not.
func ofdSupported(f *os.File) bool {
	_, err := ofdHeldElsewhere(f, lockPermBase)
	return !errors.Is(err, unix.EINVAL)
}

package file

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/thinblk/thinblk/block"
)

// Perm is a set of QEMU block permissions (BLK_PERM_*), the unit of image
// locking, which is compatible with QEMU's (block/file-posix.c, QEMU 7.2).
//
// A process that opens an image declares permissions it uses (Perm) and
// permissions it refuses to other processes (Unshare). They are recorded as
// shared OFD locks (fcntl F_OFD_SETLK, F_RDLCK) on single bytes of the file:
// byte 100+i held means "I use permission i", byte 200+i held means "nobody
// else may have permission i". Before using permission i an opener checks
// that no other open file description holds byte 200+i; before refusing i it
// checks that none holds byte 100+i. Locks are taken first and checked
// second, so of two openers racing for conflicting permissions at least one
// fails and never both succeed. The kernel drops the locks when the last
// descriptor of the description closes, also when the process dies.
//
// Within one process, nodes on the same file never conflict with each
// other: the process holds the union of their permissions on one open file
// description (a close-on-exec duplicate of the first node's descriptor,
// which child processes do not inherit), shared by all of them and closed
// with the last. Tools that open an image twice (a chain read-only and its
// base read-write, as commit does) are therefore not refused by themselves;
// other processes see the union. An O_DIRECT node's second, buffered
// descriptor holds no locks: closing it releases nothing.
//
// What QEMU takes (observed with qemu-img, qemu-io and qemu-nbd 7.2):
//
//   - an image with a format (qcow2, ...), opened read-write: Perm
//     consistent read, write and resize; Unshare write and resize;
//   - the same, read-only (also every backing file): Perm consistent
//     read; Unshare write and resize;
//   - qemu-img info (no data I/O): Perm nothing; Unshare write and resize
//     for formats, nothing at all for raw;
//   - raw, read-write: Perm consistent read and write (plus resize for
//     qemu-img resize); read-only: consistent read; Unshare nothing, except
//     that convert sources refuse write and resize and exports (qemu-nbd)
//     refuse resize;
//   - force-share (-U): Unshare nothing (only with read-only images).
type Perm uint8

// The permissions, in QEMU's bit order: bit i is locked at bytes 100+i and
// 200+i.
const (
	// PermConsistentRead: the opener reads and needs the contents not to
	// change under it without its knowledge.
	PermConsistentRead Perm = 1 << iota
	// PermWrite: the opener writes.
	PermWrite
	// PermWriteUnchanged: the opener writes data that does not change
	// what is read (copy-on-read).
	PermWriteUnchanged
	// PermResize: the opener changes the size.
	PermResize

	// PermAll is every permission.
	PermAll = PermConsistentRead | PermWrite | PermWriteUnchanged | PermResize
)

// numPerms is the number of permission bits; lockPermBase and lockSharedBase
// are the first bytes of the two lock ranges.
const (
	numPerms       = 4
	lockPermBase   = 100
	lockSharedBase = 200
)

// permNames are QEMU's names of the permissions, used in its messages.
var permNames = [numPerms]string{"consistent read", "write", "write unchanged", "resize"}

// String lists the permissions by QEMU's names, comma separated ("" for none).
func (p Perm) String() string {
	var names []string
	for i := 0; i < numPerms; i++ {
		if p&(1<<i) != 0 {
			names = append(names, permNames[i])
		}
	}
	return strings.Join(names, ", ")
}

// Locking modes of Options.Locking (QEMU's file driver option "locking").
const (
	LockAuto = "auto" // lock where the kernel has OFD locks (the default, also "")
	LockOn   = "on"   // lock; fail with block.ErrNotSupported where it cannot
	LockOff  = "off"  // take and check no locks
)

// parseLocking checks a locking mode; "" means auto.
func parseLocking(mode string) (string, error) {
	switch mode {
	case "", LockAuto:
		return LockAuto, nil
	case LockOn, LockOff:
		return mode, nil
	}
	return "", fmt.Errorf("%w: locking %q (want auto, on or off)", block.ErrInvalid, mode)
}

// ErrLocked is wrapped by every *LockError: another process uses the image
// in a way that conflicts with the requested permissions.
var ErrLocked = errors.New("image is locked")

// LockError says which permission could not be had, in QEMU's words.
type LockError struct {
	// Name is the file.
	Name string
	// Perm is the one permission of the conflict.
	Perm Perm
	// Shared is true when the opener wanted to refuse Perm to others and
	// another process uses it ("Failed to get shared ... lock"); false when
	// the opener wanted Perm and another process refuses it.
	Shared bool
}

// Error reads like QEMU's message and hint on one line:
// `Failed to get "write" lock: Is another process using the image [x.qcow2]?`.
func (e *LockError) Error() string {
	shared := ""
	if e.Shared {
		shared = "shared "
	}
	return fmt.Sprintf("Failed to get %s\"%s\" lock: Is another process using the image [%s]?", shared, e.Perm, e.Name)
}

// Unwrap returns ErrLocked.
func (e *LockError) Unwrap() error { return ErrLocked }

// lockKey identifies a file (device and inode).
type lockKey struct{ dev, ino uint64 }

// lockSet is what one node asks for.
type lockSet struct{ perm, unshare Perm }

func (a lockSet) union(b lockSet) lockSet {
	return lockSet{a.perm | b.perm, a.unshare | b.unshare}
}

// lockFile is the process's locks on one file: the description that holds
// them and the nodes that share it.
type lockFile struct {
	key   lockKey
	f     *os.File
	held  lockSet
	users map[*Node]lockSet
}

// locks is the process-wide table of locked files.
var locks struct {
	mu    sync.Mutex
	files map[lockKey]*lockFile
}

// lockDefaults returns the permissions Open takes when Options leave them
// zero.
func lockDefaults(o Options) lockSet {
	s := lockSet{perm: o.Perm, unshare: o.Unshare}
	if o.Perm == 0 && !o.NoIO {
		s.perm = PermConsistentRead
		if !o.ReadOnly {
			s.perm |= PermWrite
		}
	}
	if o.ForceShare {
		s.unshare = 0
	}
	return s
}

// initLock sets up locking for a freshly opened node and takes the locks of
// its options.
func (n *Node) initLock() error {
	mode, err := parseLocking(n.opts.Locking)
	if err != nil {
		return err
	}
	if n.opts.ForceShare && !n.opts.ReadOnly {
		return fmt.Errorf("%w: force-share=on can only be used with read-only images", block.ErrInvalid)
	}
	if mode == LockOff {
		return nil
	}
	if !ofdSupported(n.f) {
		if mode == LockOn {
			return fmt.Errorf("%w: image locking needs OFD locks (fcntl F_OFD_SETLK)", block.ErrNotSupported)
		}
		return nil
	}
	key, err := lockKeyOf(n.f)
	if err != nil {
		return err
	}
	n.lockKey, n.locking = key, true
	return n.SetPerm(lockDefaults(n.opts).perm, lockDefaults(n.opts).unshare)
}

// SetPerm changes the permissions the node uses (perm) and refuses to other
// processes (unshare), like QEMU's permission update: the new locks are
// added, checked against other processes, and only then are the locks no
// longer needed dropped. On a conflict the node keeps its previous
// permissions and the error is a *LockError. With Options.ForceShare,
// unshare is ignored. Without locking (LockOff, or no OFD locks under
// LockAuto) SetPerm does nothing. Safe for concurrent use.
func (n *Node) SetPerm(perm, unshare Perm) error {
	if !n.locking {
		return nil
	}
	perm &= PermAll
	unshare &= PermAll
	if n.opts.ForceShare {
		unshare = 0
	}
	want := lockSet{perm, unshare}

	locks.mu.Lock()
	defer locks.mu.Unlock()
	// Close sets closed before it takes locks.mu to release: checked here,
	// a closing node is never added back.
	if n.closed.Load() {
		return &block.OpError{Op: "lock", Node: n.name, Err: block.ErrClosed}
	}
	lf := locks.files[n.lockKey]
	if lf == nil {
		f, err := dupLockFile(n.f)
		if err != nil {
			return n.opError("lock", 0, 0, err)
		}
		lf = &lockFile{key: n.lockKey, f: f, users: map[*Node]lockSet{}}
	}
	var next lockSet
	for u, s := range lf.users {
		if u != n {
			next = next.union(s)
		}
	}
	next = next.union(want)
	old := lf.held
	prepare := old.union(next)
	err := lf.apply(old, prepare)
	if err == nil {
		err = lf.check(n.name, want)
	}
	if err != nil {
		lf.apply(prepare, old) // back to what other nodes need; best effort
		lf.closeIfUnused()
		return err
	}
	lf.apply(prepare, next) // drops only; a failure leaves extra locks
	lf.held = next
	lf.users[n] = want
	if locks.files == nil {
		locks.files = map[lockKey]*lockFile{}
	}
	locks.files[n.lockKey] = lf
	return nil
}

// releaseLock drops the node's permissions, and the description holding the
// locks with the last node of the process on the file. Errors are ignored:
// closing the description drops every lock anyway.
func (n *Node) releaseLock() {
	if !n.locking {
		return
	}
	locks.mu.Lock()
	defer locks.mu.Unlock()
	lf := locks.files[n.lockKey]
	if lf == nil {
		return
	}
	if _, ok := lf.users[n]; !ok {
		return
	}
	delete(lf.users, n)
	var next lockSet
	for _, s := range lf.users {
		next = next.union(s)
	}
	lf.apply(lf.held, next)
	lf.held = next
	lf.closeIfUnused()
}

// closeIfUnused closes the description when no node uses it any more.
// Called with locks.mu held.
func (lf *lockFile) closeIfUnused() {
	if len(lf.users) > 0 {
		return
	}
	if locks.files[lf.key] == lf {
		delete(locks.files, lf.key)
	}
	lf.f.Close()
}

// apply moves the locks on the description from the set from to the set to:
// bytes in to and not in from are locked, bytes in from and not in to
// unlocked. It stops at the first failure to lock, with the error QEMU
// gives ("Failed to lock byte N"); failures to unlock are reported after
// the rest is done.
func (lf *lockFile) apply(from, to lockSet) error {
	var unlockErr error
	for _, r := range [2]struct {
		base     int64
		from, to Perm
	}{{lockPermBase, from.perm, to.perm}, {lockSharedBase, from.unshare, to.unshare}} {
		for i := 0; i < numPerms; i++ {
			bit := Perm(1) << i
			b := r.base + int64(i)
			switch {
			case r.to&bit != 0 && r.from&bit == 0:
				if err := ofdLock(lf.f, b, true); err != nil {
					return fmt.Errorf("%w: Failed to lock byte %d: %w", ErrLocked, b, platformErr(err))
				}
			case r.to&bit == 0 && r.from&bit != 0:
				if err := ofdLock(lf.f, b, false); err != nil && unlockErr == nil {
					unlockErr = fmt.Errorf("Failed to unlock byte %d: %w", b, err)
				}
			}
		}
	}
	return unlockErr
}

// check tests the node's wish against the locks of other descriptions:
// every permission in want.perm must not be refused by another (byte
// 200+i), every one in want.unshare must not be used by another (byte
// 100+i). QEMU's order: permissions first, lowest bit first.
func (lf *lockFile) check(name string, want lockSet) error {
	for _, r := range [2]struct {
		base   int64
		bits   Perm
		shared bool
	}{{lockSharedBase, want.perm, false}, {lockPermBase, want.unshare, true}} {
		for i := 0; i < numPerms; i++ {
			bit := Perm(1) << i
			if r.bits&bit == 0 {
				continue
			}
			held, err := ofdHeldElsewhere(lf.f, r.base+int64(i))
			if err != nil {
				return fmt.Errorf("%w: Failed to check byte %d: %w", ErrLocked, r.base+int64(i), platformErr(err))
			}
			if held {
				return &LockError{Name: name, Perm: bit, Shared: r.shared}
			}
		}
	}
	return nil
}

// lockForCreate locks f, a file being created or overwritten by Create, the
// way QEMU's file driver does before it truncates: it uses write and resize
// and refuses resize to others. So an image another process has open (a
// qcow2 user refuses write, an export refuses resize) is not truncated under
// it. Create must open the file without O_TRUNC, call lockForCreate, and
// truncate only after it succeeded; release drops the locks (the node that
// later opens the file takes its own). With no OFD locks it does nothing.
//
// Unlike other opens, it also refuses a file this process has open (convert
// with the source as its own target): QEMU's opens within one process
// conflict there too, and truncating would destroy what is being read.
func lockForCreate(f *os.File, name string) (release func(), err error) {
	if key, kerr := lockKeyOf(f); kerr == nil {
		locks.mu.Lock()
		lf := locks.files[key]
		busy := lf != nil && len(lf.users) > 0
		locks.mu.Unlock()
		if busy {
			return nil, &LockError{Name: name, Perm: PermWrite}
		}
	}
	n := &Node{name: name, f: f, opts: Options{Perm: PermWrite | PermResize, Unshare: PermResize}}
	if err := n.initLock(); err != nil {
		return nil, err
	}
	return n.releaseLock, nil
}

package file

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/internal/testutil"
)

// foreign is an open file description of its own on a test file: to the
// kernel it is "another process" (OFD locks of different descriptions
// conflict even within one process).
type foreign struct {
	t *testing.T
	f *os.File
}

func newForeign(t *testing.T, name string) *foreign {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &foreign{t, f}
}

// hold takes shared locks on the given bytes.
func (x *foreign) hold(bytes ...int64) {
	x.t.Helper()
	for _, b := range bytes {
		if err := ofdLock(x.f, b, true); err != nil {
			x.t.Fatalf("lock byte %d: %v", b, err)
		}
	}
}

// release drops the locks on the given bytes.
func (x *foreign) release(bytes ...int64) {
	x.t.Helper()
	for _, b := range bytes {
		if err := ofdLock(x.f, b, false); err != nil {
			x.t.Fatalf("unlock byte %d: %v", b, err)
		}
	}
}

// held returns which of the lock bytes 100..103 and 200..203 other
// descriptions than x's hold.
func (x *foreign) held() []int64 {
	x.t.Helper()
	var out []int64
	for _, base := range []int64{lockPermBase, lockSharedBase} {
		for i := int64(0); i < numPerms; i++ {
			h, err := ofdHeldElsewhere(x.f, base+i)
			if err != nil {
				x.t.Fatal(err)
			}
			if h {
				out = append(out, base+i)
			}
		}
	}
	return out
}

func (x *foreign) expectHeld(want ...int64) {
	x.t.Helper()
	got := x.held()
	if len(got) != len(want) {
		x.t.Fatalf("bytes locked by the node: %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			x.t.Fatalf("bytes locked by the node: %v, want %v", got, want)
		}
	}
}

// lockFixture makes a 1 MiB file and skips when the kernel has no OFD
// locks (then LockAuto takes none, which TestLockOffAndNoOFD covers).
func lockFixture(t *testing.T) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(name, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !ofdSupported(f) {
		t.Skip("no OFD locks on this platform")
	}
	return name
}

func mustOpen(t *testing.T, name string, o Options) *Node {
	t.Helper()
	n, err := Open(name, o)
	if err != nil {
		t.Fatalf("Open(%+v): %v", o, err)
	}
	return n
}

func tableEmpty() bool {
	locks.mu.Lock()
	defer locks.mu.Unlock()
	return len(locks.files) == 0
}

func TestLockDefaultsAndRelease(t *testing.T) {
	name := lockFixture(t)
	x := newForeign(t, name)

	rw := mustOpen(t, name, Options{})
	x.expectHeld(100, 101) // raw read-write, as qemu-io -f raw
	rw.Close()
	x.expectHeld()

	ro := mustOpen(t, name, Options{ReadOnly: true})
	x.expectHeld(100)
	ro.Close()

	// A format's read-write locks (qemu-io on a qcow2): 100,101,103 and
	// 201,203.
	q := mustOpen(t, name, Options{Perm: PermConsistentRead | PermWrite | PermResize, Unshare: PermWrite | PermResize})
	x.expectHeld(100, 101, 103, 201, 203)
	q.Close()

	// NoIO (qemu-img info of raw): nothing at all.
	info := mustOpen(t, name, Options{ReadOnly: true, NoIO: true})
	x.expectHeld()
	info.Close()

	// ForceShare drops Unshare.
	fs := mustOpen(t, name, Options{ReadOnly: true, Unshare: PermWrite | PermResize, ForceShare: true})
	x.expectHeld(100)
	fs.Close()

	x.expectHeld()
	if !tableEmpty() {
		t.Fatal("lock table not empty after every node closed")
	}
}

func TestLockConflicts(t *testing.T) {
	name := lockFixture(t)
	x := newForeign(t, name)

	// Another process refuses write (a qcow2 user): a writer fails with
	// QEMU's message, a reader opens.
	x.hold(100, 201, 203)
	_, err := Open(name, Options{})
	var le *LockError
	if !errors.As(err, &le) || le.Perm != PermWrite || le.Shared || !errors.Is(err, ErrLocked) {
		t.Fatalf("writer against a refused write: %v, want a LockError for write", err)
	}
	want := `Failed to get "write" lock: Is another process using the image [` + name + `]?`
	if err.Error() != want {
		t.Fatalf("message %q, want %q", err.Error(), want)
	}
	ro := mustOpen(t, name, Options{ReadOnly: true})
	ro.Close()
	x.release(100, 201, 203)

	// Another process writes (qemu-nbd on raw: 100,101 and 203): refusing
	// write fails "shared", -U opens, refusing nothing opens.
	x.hold(100, 101, 203)
	_, err = Open(name, Options{ReadOnly: true, Unshare: PermWrite | PermResize})
	if !errors.As(err, &le) || le.Perm != PermWrite || !le.Shared {
		t.Fatalf("refusing write to a writer: %v, want a shared LockError for write", err)
	}
	if want := `Failed to get shared "write" lock: Is another process using the image [` + name + `]?`; err.Error() != want {
		t.Fatalf("message %q, want %q", err.Error(), want)
	}
	mustOpen(t, name, Options{ReadOnly: true, Unshare: PermWrite | PermResize, ForceShare: true}).Close()
	mustOpen(t, name, Options{ReadOnly: true}).Close()
	// Resize is refused by the holder: a resizer fails on "resize".
	_, err = Open(name, Options{Perm: PermConsistentRead | PermWrite | PermResize})
	if !errors.As(err, &le) || le.Perm != PermResize || le.Shared {
		t.Fatalf("resizer against a refused resize: %v, want a LockError for resize", err)
	}
	x.release(100, 101, 203)

	// A failed open leaves no locks and no table entry behind.
	x.expectHeld()
	if !tableEmpty() {
		t.Fatal("failed opens left the lock table non-empty")
	}
}

// TestLockSharedWithinProcess: nodes of one process on one file never
// refuse each other, others see the union, and each Close drops only what
// no remaining node needs.
func TestLockSharedWithinProcess(t *testing.T) {
	name := lockFixture(t)
	x := newForeign(t, name)

	// A read-only chain member that refuses write (a qcow2 backing file)
	// and then the same file read-write (commit's base): no conflict.
	ro := mustOpen(t, name, Options{ReadOnly: true, Unshare: PermWrite | PermResize})
	rw := mustOpen(t, name, Options{Perm: PermConsistentRead | PermWrite | PermResize, Unshare: PermWrite | PermResize})
	// A second name for the same file shares the table entry too.
	link := filepath.Join(filepath.Dir(name), "link")
	if err := os.Symlink(name, link); err != nil {
		t.Fatal(err)
	}
	viaLink := mustOpen(t, link, Options{ReadOnly: true})
	x.expectHeld(100, 101, 103, 201, 203)
	rw.Close()
	x.expectHeld(100, 201, 203)
	ro.Close()
	x.expectHeld(100)
	viaLink.Close()
	x.expectHeld()
	if !tableEmpty() {
		t.Fatal("lock table not empty")
	}
}

// TestSetPerm: a permission change that conflicts keeps the old locks; one
// that succeeds drops what is no longer needed.
func TestSetPerm(t *testing.T) {
	name := lockFixture(t)
	x := newForeign(t, name)
	n := mustOpen(t, name, Options{ReadOnly: true})
	defer n.Close()
	x.hold(101) // a writer elsewhere
	if err := n.SetPerm(PermConsistentRead, PermWrite); err == nil {
		t.Fatal("refusing write to a writer succeeded")
	}
	x.release(101)
	x.expectHeld(100)
	if err := n.SetPerm(PermConsistentRead, PermWrite|PermResize); err != nil {
		t.Fatal(err)
	}
	x.expectHeld(100, 201, 203)
	if err := n.SetPerm(0, PermResize); err != nil {
		t.Fatal(err)
	}
	x.expectHeld(203)
	n.Close()
	x.expectHeld()
	if err := n.SetPerm(PermConsistentRead, 0); !errors.Is(err, block.ErrClosed) {
		t.Fatalf("SetPerm after Close: %v, want ErrClosed", err)
	}
}

// TestLockDirect: an O_DIRECT node holds its locks on its main
// description; its buffered second descriptor holds none, and the locks
// stay until Close.
func TestLockDirect(t *testing.T) {
	name := lockFixture(t)
	x := newForeign(t, name)
	n, err := Open(name, Options{Direct: true, Unshare: PermWrite})
	if errors.Is(err, block.ErrNotSupported) {
		t.Skipf("no O_DIRECT here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	x.expectHeld(100, 101, 201)
	// Unaligned requests go through the buffered descriptor.
	if err := n.Pwrite([]byte("abc"), 1, 0); err != nil {
		t.Fatal(err)
	}
	x.expectHeld(100, 101, 201)
	n.Close()
	x.expectHeld()
}

func TestLockOffAndOptions(t *testing.T) {
	name := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(name, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(name, Options{ForceShare: true}); !errors.Is(err, block.ErrInvalid) {
		t.Fatalf("ForceShare on a writable node: %v, want ErrInvalid", err)
	}
	if _, err := Open(name, Options{Locking: "maybe"}); !errors.Is(err, block.ErrInvalid) {
		t.Fatalf("locking=maybe: %v, want ErrInvalid", err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !ofdSupported(f) {
		if _, err := Open(name, Options{Locking: LockOn}); !errors.Is(err, block.ErrNotSupported) {
			t.Fatalf("locking=on without OFD locks: %v, want ErrNotSupported", err)
		}
		mustOpen(t, name, Options{}).Close() // auto: no locks, no error
		return
	}
	x := &foreign{t, f}
	x.hold(200, 201, 203) // refuses everything a writer wants
	n := mustOpen(t, name, Options{Locking: LockOff, Unshare: PermAll})
	x.expectHeld()
	n.Close()
	if _, err := Open(name, Options{Locking: LockOn}); !errors.Is(err, ErrLocked) {
		t.Fatalf("locking=on against a refused read: %v, want ErrLocked", err)
	}
}

func TestPermString(t *testing.T) {
	if got := (PermConsistentRead | PermResize).String(); got != "consistent read, resize" {
		t.Fatalf("String = %q", got)
	}
	if got := PermWriteUnchanged.String(); got != "write unchanged" {
		t.Fatalf("String = %q", got)
	}
}

// TestLockBlockDevice: a block device is locked on the same bytes, and
// QEMU sees it: qemu-io cannot write a loop device a node refuses writes
// to, and can once the node is closed.
func TestLockBlockDevice(t *testing.T) {
	name := lockFixture(t)
	dev := testutil.LoopDevice(t, name)
	testutil.NeedTool(t, "qemu-io")
	n, err := Open(dev, Options{Direct: true, Unshare: PermWrite | PermResize})
	if errors.Is(err, block.ErrNotSupported) {
		n, err = Open(dev, Options{Unshare: PermWrite | PermResize})
	}
	if err != nil {
		t.Fatal(err)
	}
	newForeign(t, dev).expectHeld(100, 101, 201, 203)
	_, stderr, code := testutil.Run(t, "qemu-io", "-f", "raw", "-c", "write 0 4k", dev)
	if code == 0 || !strings.Contains(stderr, `Failed to get "write" lock`) {
		t.Fatalf("qemu-io write on the locked device: exit %d, %q", code, stderr)
	}
	n.Close()
	if _, stderr, code := testutil.Run(t, "qemu-io", "-f", "raw", "-c", "write 0 4k", dev); code != 0 {
		t.Fatalf("qemu-io write after Close: exit %d, %q", code, stderr)
	}
}

// TestLockForCreate: what Create must take before truncating (QEMU's
// 101, 103 and 203), refused by an image's user.
func TestLockForCreate(t *testing.T) {
	name := lockFixture(t)
	x := newForeign(t, name)
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	release, err := lockForCreate(f, name)
	if err != nil {
		t.Fatal(err)
	}
	x.expectHeld(101, 103, 203)
	release()
	x.expectHeld()
	x.hold(100, 201, 203) // a qcow2 reader
	if _, err := lockForCreate(f, name); !errors.Is(err, ErrLocked) {
		t.Fatalf("create over a qcow2 reader: %v, want ErrLocked", err)
	}
	if !tableEmpty() {
		t.Fatal("lock table not empty")
	}
}

// TestLockConcurrentOpenClose: nodes of one process opened, re-permitted
// and closed from many goroutines on one file never refuse each other, and
// leave no lock and no table entry behind (run it with -race too).
func TestLockConcurrentOpenClose(t *testing.T) {
	name := lockFixture(t)
	x := newForeign(t, name)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				o := Options{ReadOnly: g%2 == 0}
				if g%4 == 1 {
					o.Unshare = PermResize
				}
				n, err := Open(name, o)
				if err != nil {
					errs <- err
					return
				}
				if err := n.SetPerm(PermConsistentRead, PermWrite); err != nil {
					errs <- err
				}
				n.Close()
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	x.expectHeld()
	if !tableEmpty() {
		t.Fatal("lock table not empty")
	}
}

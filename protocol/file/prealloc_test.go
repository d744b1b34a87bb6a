package file

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/internal/testutil"
)

// TestPreallocate: a reservation allocates a hole without changing what
// it reads or the size; data in the range stays; past the end of a
// growable node it keeps the size for the write that grows it; a
// read-only node and a fixed node's out-of-range request refuse.
func TestPreallocate(t *testing.T) {
	const size = reserveFrom + 4<<20
	n, name := newFile(t, size, Options{Growable: true})
	p := pattern(8192, 3)
	if err := n.Pwrite(p, reserveFrom+1<<20, 0); err != nil {
		t.Fatal(err)
	}
	before := testutil.HostBytes(t, name)
	if err := n.Preallocate(reserveFrom+512<<10, 2<<20); err != nil {
		t.Fatal(err)
	}
	after := testutil.HostBytes(t, name)
	if after < before+2<<20-8192 {
		t.Skipf("the file system did not reserve (%d -> %d bytes allocated)", before, after)
	}
	// The reserved hole is anchored: zeros with storage behind them (asked
	// before reading it: ext4 reports cached pages of a reserved range as
	// data).
	e, err := n.BlockStatus(reserveFrom+512<<10, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if e.Status != block.Zero|block.Allocated {
		t.Fatalf("reserved range reports %v, want Zero|Allocated", e.Status)
	}
	got := make([]byte, 2<<20)
	if err := n.Pread(got, reserveFrom+512<<10); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 2<<20)
	copy(want[512<<10:], p)
	if !bytes.Equal(got, want) {
		t.Fatal("a reservation changed what the range reads")
	}
	if n.Size() != size {
		t.Fatalf("size %d after a reservation, want %d", n.Size(), size)
	}
	// Past the end of a growable node: reserved, size unchanged until the
	// write that grows it.
	if err := n.Preallocate(size, 1<<20); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(name); fi.Size() != size || n.Size() != size {
		t.Fatalf("reservation past the end changed the size: file %d node %d", fi.Size(), n.Size())
	}
	if err := n.Pwrite(p, size, 0); err != nil || n.Size() != size+int64(len(p)) {
		t.Fatalf("growing write after a reservation: %v, size %d", err, n.Size())
	}

	// In the first reserveFrom bytes a reservation is ignored.
	was := testutil.HostBytes(t, name)
	if err := n.Preallocate(0, 1<<20); err != nil || testutil.HostBytes(t, name) != was {
		t.Fatalf("reservation at the start of the file: %v, %d -> %d bytes allocated", err, was, testutil.HostBytes(t, name))
	}

	fixed, _ := newFile(t, size, Options{})
	if err := fixed.Preallocate(size-4096, 8192); !errors.Is(err, block.ErrOutOfRange) {
		t.Fatalf("reservation past the end of a fixed node: %v", err)
	}
	ro, err := Open(name, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if err := ro.Preallocate(0, 4096); !errors.Is(err, block.ErrReadOnly) {
		t.Fatalf("reservation on a read-only node: %v", err)
	}
}

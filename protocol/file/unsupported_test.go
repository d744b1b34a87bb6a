package file

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/internal/testutil"
)

// TestTmpfsNoZeroRange: tmpfs has PUNCH_HOLE but not ZERO_RANGE. The node
// must remember the refusal and zero by punching and allocating again.
func TestTmpfsNoZeroRange(t *testing.T) {
	if fi, err := os.Stat("/dev/shm"); err != nil || !fi.IsDir() {
		t.Skip("no /dev/shm")
	}
	dir, err := os.MkdirTemp("/dev/shm", "thinblk-test-")
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	const mib = 1 << 20
	name := filepath.Join(dir, "disk")
	if err := Create(name, 4*mib, PreallocOff); err != nil {
		t.Fatal(err)
	}
	n, err := Open(name, Options{Discard: true})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	data := pattern(4*mib, 2)
	if err := n.Pwrite(data, 0, 0); err != nil {
		t.Fatal(err)
	}
	full := testutil.HostBytes(t, name)
	if err := n.WriteZeroes(0, mib, block.NoFallback); err != nil {
		t.Fatalf("write-zeroes on tmpfs: %v", err)
	}
	if !n.noZeroRange.Load() {
		t.Skip("this tmpfs supports ZERO_RANGE; nothing to test")
	}
	if got := testutil.HostBytes(t, name); got != full {
		t.Errorf("write-zeroes without unmap changed allocation from %d to %d", full, got)
	}
	if err := n.WriteZeroes(mib, mib, block.NoFallback|block.MayUnmap); err != nil {
		t.Fatal(err)
	}
	if got := testutil.HostBytes(t, name); got != full-mib {
		t.Errorf("unmapping write-zeroes left %d allocated, want %d", got, full-mib)
	}
	clear(data[:2*mib])
	got := make([]byte, 4*mib)
	if err := n.Pread(got, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("contents after zeroing on tmpfs differ (%v)", err)
	}
}

// TestNoFallocateFallback: on a filesystem with neither PUNCH_HOLE nor
// ZERO_RANGE (simulated by the remembered-refusal flags), WriteZeroes writes
// zeros, NoFallback fails with ErrNotSupported without changing anything,
// and Discard still leaves zeros as Caps promised.
func TestNoFallocateFallback(t *testing.T) {
	n, _ := newFile(t, 1<<20, Options{Discard: true})
	data := pattern(1<<20, 8)
	if err := n.Pwrite(data, 0, 0); err != nil {
		t.Fatal(err)
	}
	n.noPunch.Store(true)
	n.noZeroRange.Store(true)
	if err := n.WriteZeroes(0, 4096, block.NoFallback); !errors.Is(err, block.ErrNotSupported) {
		t.Errorf("NoFallback without native zeroing: %v", err)
	}
	if err := n.WriteZeroes(0, 4096, block.NoFallback|block.MayUnmap); !errors.Is(err, block.ErrNotSupported) {
		t.Errorf("NoFallback|MayUnmap without native zeroing: %v", err)
	}
	got := make([]byte, 1<<20)
	if err := n.Pread(got, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("a failed NoFallback request changed data (%v)", err)
	}
	if err := n.WriteZeroes(100, 5000, block.MayUnmap); err != nil {
		t.Fatal(err)
	}
	if err := n.Discard(200000, 70000, 0); err != nil {
		t.Fatal(err)
	}
	clear(data[100:5100])
	clear(data[200000:270000])
	if err := n.Pread(got, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("fallback zeroing differs (%v)", err)
	}
}

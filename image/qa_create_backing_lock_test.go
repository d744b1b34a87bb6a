package image

import (
	"path/filepath"
	"testing"

	"github.com/thinblk/thinblk/internal/testutil"
)

// TestCreateOverlayOfWrittenImage: qemu-img create -b opens the backing
// file for its size and format only (force-share, no I/O), so an overlay
// can be made of a disk a running VM writes (the first step of an external
// snapshot). thinblk create refused it: "Failed to get shared "write"
// lock" on the base, although nothing is read from it.
func TestCreateOverlayOfWrittenImage(t *testing.T) {
	testutil.NeedTool(t, "qemu-nbd")
	registerTestFormats()
	dir := t.TempDir()
	base := filepath.Join(dir, "base.tfmt")
	if err := Create(base, "tfmt", CreateOptions{Size: 8192}); err != nil {
		t.Fatal(err)
	}
	// A writer of the base (qemu-nbd serving it read-write).
	srv := startQemuNbd(t, filepath.Join(dir, "s"), "-f", "raw", base)
	defer srv()
	if _, err := Open(base, Options{ReadOnly: true}); err == nil {
		t.Fatal("opening the written base for reading succeeded: the test does not hold the lock it needs")
	}
	top := filepath.Join(dir, "top.tfmt")
	if err := Create(top, "tfmt", CreateOptions{Backing: "base.tfmt", BackingFormat: "tfmt"}); err != nil {
		t.Fatalf("create an overlay of a written image (size from the base): %v", err)
	}
	d, err := Open(top, Options{ReadOnly: true, NoBacking: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Size() != 8192 {
		t.Errorf("overlay size %d, want the base's 8192", d.Size())
	}
}

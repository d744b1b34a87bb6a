package tool

import (
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/internal/testutil"
)

// TestRebaseNeedsBackingFormat: as with qemu-img 7.2, a new backing file
// without -F is refused (safe and unsafe) and the image keeps its backing.
func TestRebaseNeedsBackingFormat(t *testing.T) {
	testutil.NeedTool(t, "qemu-img")
	dir := t.TempDir()
	img, nb := filepath.Join(dir, "img.qcow2"), filepath.Join(dir, "nb.qcow2")
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", img, "4M")
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", nb, "4M")
	for _, unsafe := range []bool{true, false} {
		err := Rebase(io.Discard, img, RebaseOptions{Backing: nb, Unsafe: unsafe})
		if err == nil || !strings.Contains(err.Error(), "backing format must be specified") {
			t.Fatalf("rebase -u=%v -b without -F: %v", unsafe, err)
		}
	}
	if out := testutil.MustRun(t, "qemu-img", "info", img); strings.Contains(out, "backing file") {
		t.Fatalf("the refused rebase recorded a backing file:\n%s", out)
	}
}

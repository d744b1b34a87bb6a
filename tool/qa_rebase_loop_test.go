package tool

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/internal/testutil"
)

// TestRebaseRefusesLoop: a safe rebase onto the image itself, or onto an
// overlay whose chain holds it, must fail and leave the image as it was
// (qemu-img refuses both; thinblk used to record the new name and leave an
// image no tool could open again: "backing file loop").
func TestRebaseRefusesLoop(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", p("base.qcow2"), "4M")
	testutil.MustRun(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 1M", p("base.qcow2"))
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", p("img.qcow2"), "4M")
	testutil.MustRun(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x22 1M 1M", p("img.qcow2"))
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", "img.qcow2", "-F", "qcow2", p("over.qcow2"))
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", "over.qcow2", "-F", "qcow2", p("over2.qcow2"))
	before, err := os.ReadFile(p("img.qcow2"))
	if err != nil {
		t.Fatal(err)
	}
	for _, nb := range []string{"img.qcow2", "over.qcow2", "over2.qcow2", "../" + filepath.Base(dir) + "/over2.qcow2", p("over.qcow2")} {
		err := Rebase(io.Discard, p("img.qcow2"), RebaseOptions{Backing: nb, BackingFormat: "qcow2"})
		if !errors.Is(err, block.ErrInvalid) {
			t.Errorf("rebase -b %s onto its own chain: err %v, want a refusal (block.ErrInvalid)", nb, err)
		}
		after, err := os.ReadFile(p("img.qcow2"))
		if err != nil {
			t.Fatal(err)
		}
		if string(after) != string(before) {
			t.Fatalf("rebase -b %s changed the image although it failed", nb)
		}
		d, err := image.Open(p("img.qcow2"), image.Options{ReadOnly: true})
		if err != nil {
			t.Fatalf("after rebase -b %s: %v", nb, err)
		}
		d.Close()
	}
	// A legitimate rebase in the same folder still works (and, being safe,
	// keeps what the image reads: zeros where base has data).
	if err := Rebase(io.Discard, p("img.qcow2"), RebaseOptions{Backing: "base.qcow2", BackingFormat: "qcow2"}); err != nil {
		t.Fatalf("rebase onto an unrelated image: %v", err)
	}
	testutil.MustRun(t, "qemu-io", "-f", "qcow2", "-c", "read -P 0 0 1M", "-c", "read -P 0x22 1M 1M", p("img.qcow2"))
}

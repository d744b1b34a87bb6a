package tool

import (
	"bytes"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/internal/testutil"
)

// TestCommit: the base reads what the top read before, qemu-img check is
// clean, and zeroed ranges of the top become zeros in the base, not data.
func TestCommit(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	for _, drop := range []bool{true, false} {
		dir := t.TempDir()
		p := func(n string) string { return filepath.Join(dir, n) }
		testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", p("base.qcow2"), "32M")
		testutil.MustRun(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 32M", p("base.qcow2"))
		testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", p("top.qcow2"))
		testutil.MustRun(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x22 1M 3M", "-c", "write -z 8M 4M",
			"-c", "discard 16M 2M", "-c", "write -P 0x33 20M 100k", "-c", "write -z 24M 10k", p("top.qcow2"))
		testutil.MustRun(t, "qemu-img", "convert", "-O", "raw", p("top.qcow2"), p("ref.raw"))

		var out bytes.Buffer
		if err := Commit(&out, io.Discard, p("top.qcow2"), CommitOptions{Drop: drop}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "Image committed.") {
			t.Fatalf("output %q", out.String())
		}
		checkSame(t, p("ref.raw"), p("base.qcow2"), "qcow2")
		checkSame(t, p("ref.raw"), p("top.qcow2"), "qcow2")
		// The zeroed ranges are zero clusters in the base, not data.
		d, err := image.Open(p("base.qcow2"), image.Options{Format: "qcow2", ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range [][2]int64{{8 << 20, 4 << 20}, {16 << 20, 2 << 20}} {
			for off := r[0]; off < r[0]+r[1]; {
				e, err := d.BlockStatus(off, r[0]+r[1]-off)
				if err != nil {
					t.Fatal(err)
				}
				if e.Status&block.Data != 0 {
					t.Errorf("committed zeros at %d+%d are data in the base (status %v)", off, e.Len, e.Status)
					break
				}
				off += e.Len
			}
		}
		d.Close()
		// Without -d the top is emptied, as qemu-img commit does: nothing
		// is allocated in its own layer (it reads the base, checked
		// above); with -d it keeps its clusters.
		top, err := image.Open(p("top.qcow2"), image.Options{Format: "qcow2", ReadOnly: true, NoBacking: true})
		if err != nil {
			t.Fatal(err)
		}
		present := int64(0)
		for off := int64(0); off < top.Size(); {
			e, err := top.BlockStatus(off, top.Size()-off)
			if err != nil {
				t.Fatal(err)
			}
			if e.Status.Present() {
				present += e.Len
			}
			off += e.Len
		}
		top.Close()
		if !drop && present != 0 {
			t.Errorf("commit without -d left %d bytes allocated in the top image", present)
		}
		if drop && present == 0 {
			t.Errorf("commit -d emptied the top image")
		}
		if !drop {
			out := testutil.MustRun(t, "qemu-img", "map", "--output=json", "-f", "qcow2", p("top.qcow2"))
			if strings.Contains(out, `"depth": 0`) {
				t.Errorf("qemu-img map finds clusters in the emptied top:\n%s", out)
			}
		}
	}

	// An image without a backing file cannot be committed.
	dir := t.TempDir()
	lone := filepath.Join(dir, "lone.qcow2")
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", lone, "1M")
	if err := Commit(io.Discard, io.Discard, lone, CommitOptions{}); err == nil || !strings.Contains(err.Error(), "backing") {
		t.Fatalf("commit without backing: %v", err)
	}
}

// TestCommitIntoDeeperBase commits a two-level chain into the bottom image
// with -b.
func TestCommitIntoDeeperBase(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "raw", p("base.raw"), "8M")
	testutil.MustRun(t, "qemu-io", "-f", "raw", "-c", "write -P 0x11 0 8M", p("base.raw"))
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", p("mid.qcow2"))
	testutil.MustRun(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x22 1M 1M", "-c", "write -z 3M 1M", p("mid.qcow2"))
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", p("top.qcow2"))
	testutil.MustRun(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x33 1536k 1M", "-c", "discard 6M 1M", p("top.qcow2"))
	testutil.MustRun(t, "qemu-img", "convert", "-O", "raw", p("top.qcow2"), p("ref.raw"))
	if err := Commit(io.Discard, io.Discard, p("top.qcow2"), CommitOptions{Base: p("base.raw"), Quiet: true}); err != nil {
		t.Fatal(err)
	}
	checkSame(t, p("ref.raw"), p("base.raw"), "raw")
	checkSame(t, p("ref.raw"), p("top.qcow2"), "qcow2")
	if err := Commit(io.Discard, io.Discard, p("top.qcow2"), CommitOptions{Base: p("ref.raw")}); err == nil {
		t.Fatal("commit into an image outside the chain succeeded")
	}
}

package qcow2

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thinblk/thinblk/internal/testutil"
)

// TestBitmapsSurviveUntilGuestWrite: a backup tool's persistent dirty
// bitmap stays valid through opens that only read, take or delete a
// snapshot; the first guest write invalidates it (thinblk does not update
// bitmaps), as the autoclear bit demands.
func TestBitmapsSurviveUntilGuestWrite(t *testing.T) {
	testutil.NeedTool(t, "qemu-img")
	name := filepath.Join(t.TempDir(), "b.qcow2")
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", name, "16M")
	run(t, "qemu-img", "bitmap", "--add", name, "b0")
	inconsistent := func() bool {
		out, _ := exec.Command("qemu-img", "info", name).CombinedOutput()
		return strings.Contains(string(out), "bitmaps are now considered inconsistent")
	}
	d := openPath(t, name, false)
	img := d.(*Image)
	readAll(t, img)
	if _, err := img.CreateSnapshot("s", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := img.DeleteSnapshot("s"); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if inconsistent() {
		t.Fatal("reads and snapshot -c/-d invalidated the dirty bitmap")
	}
	mustBeClean(t, name)

	d = openPath(t, name, false)
	if err := d.Pwrite(make([]byte, 4096), 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if !inconsistent() {
		t.Fatal("a guest write left the dirty bitmap marked consistent")
	}
}

package vmdk

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/internal/testutil"
)

// TestExtentFilesRefuseWriters: while a multi-file vmdk is open, its extent
// files refuse other processes' writers (as under qemu-nbd -r), and with
// force-share (-U) they refuse nothing.
func TestExtentFilesRefuseWriters(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	dir := t.TempDir()
	name := filepath.Join(dir, "big.vmdk")
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "vmdk", "-o", "subformat=twoGbMaxExtentSparse", name, "3G")
	extent := filepath.Join(dir, "big-s001.vmdk")
	write := func() (string, error) {
		out, err := exec.Command("qemu-io", "-f", "raw", "-c", "write -P 0 0 512", extent).CombinedOutput()
		return string(out), err
	}
	for _, force := range []bool{false, true} {
		d, err := image.Open(name, image.Options{ReadOnly: true, ForceShare: force})
		if err != nil {
			t.Fatal(err)
		}
		out, err := write()
		d.Close()
		if !force && (err == nil || !strings.Contains(out, `Failed to get "write" lock`)) {
			t.Fatalf("qemu-io wrote an extent of an open vmdk: %v %s", err, out)
		}
		if force && err != nil {
			t.Fatalf("with force-share, qemu-io could not write the extent: %v %s", err, out)
		}
	}
}

package tool

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/thinblk/thinblk/internal/testutil"
)

// TestCheckOutputMatchesQemuImg: the human output of check, fragmentation
// line included, is qemu-img's for a clean image with no data, and for one
// with fragmented, compressed, zero-with-storage clusters and a snapshot.
func TestCheckOutputMatchesQemuImg(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.qcow2")
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", empty, "1M")
	busy := filepath.Join(dir, "busy.qcow2")
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", busy, "64M")
	testutil.MustRun(t, "qemu-io", "-f", "qcow2", "-c", "write -P 1 0 3M", "-c", "write -c -P 2 4M 64k",
		"-c", "write -c -P 3 5M 64k", "-c", "write -P 5 33M 1M", "-c", "write -P 6 1M 64k",
		"-c", "write -P 7 40M 64k", "-c", "write -z 40M 64k", busy)
	testutil.MustRun(t, "qemu-img", "snapshot", "-c", "a", busy)
	testutil.MustRun(t, "qemu-io", "-f", "qcow2", "-c", "write -P 8 0 128k", busy)
	for _, name := range []string{empty, busy} {
		var out bytes.Buffer
		if err := Check(&out, name, CheckOptions{}); err != nil {
			t.Fatal(err)
		}
		if want := testutil.MustRun(t, "qemu-img", "check", name); out.String() != want {
			t.Errorf("check %s:\n%s\nqemu-img:\n%s", filepath.Base(name), out.String(), want)
		}
	}
}

package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thinblk/thinblk/internal/testutil"
)

// qemuNBD serves img with qemu-nbd on a unix socket until the test ends and
// returns the nbd+unix URL.
func qemuNBD(t *testing.T, format, img string) string {
	t.Helper()
	testutil.NeedTool(t, "qemu-nbd")
	sock := filepath.Join(t.TempDir(), "nbd.sock")
	cmd := exec.Command("qemu-nbd", "-f", format, "-k", sock, "-t", "--discard=unmap", img)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("qemu-nbd did not create its socket")
		}
	}
	return "nbd+unix:///?socket=" + sock
}

// TestImagesOverNBDURLs opens an image served by qemu-nbd through its URL:
// map equals qemu-img map of the same URL, io writes and reads through it
// land in the file.
func TestImagesOverNBDURLs(t *testing.T) {
	testutil.NeedTool(t, "qemu-img")
	dir := t.TempDir()
	img := newFile(t, dir, "n.raw", 8<<20)
	writeAt(t, img, []byte(strings.Repeat("x", 300000)), 1<<20)
	url := qemuNBD(t, "raw", img)

	want := testutil.MustRun(t, "qemu-img", "map", "--output=json", url)
	got := mustThinblk(t, "map", "--output=json", url)
	if got != want {
		t.Fatalf("map over NBD:\nthinblk:\n%s\nqemu-img:\n%s", got, want)
	}
	out := mustThinblk(t, "info", "--output=json", url)
	if !strings.Contains(out, `"virtual-size": 8388608`) || !strings.Contains(out, `"format": "raw"`) {
		t.Fatalf("info over NBD:\n%s", out)
	}
	mustThinblk(t, "io", "-c", "write -P 0x5a 4M 64k", "-c", "write -z -u 1M 64k", "-c", "discard 6M 1M", "-c", "flush", url)
	mustThinblk(t, "io", "-r", "-c", "read -P 0x5a 4M 64k", "-c", "read -P 0 1M 64k", url)
	testutil.MustRun(t, "qemu-io", "-r", "-f", "raw", "-c", "read -P 0x5a 4M 64k", "-c", "read -P 0 1M 64k", img)
	// A bad URL is one clear line.
	stdout, stderr, code := thinblk(t, "info", "nbd+unix:///?socket="+filepath.Join(dir, "nope.sock"))
	checkOneLineError(t, []string{"info", "bad socket"}, stdout, stderr, code, "nope.sock")
	stdout, stderr, code = thinblk(t, "info", "gopher://example/x")
	checkOneLineError(t, []string{"info", "gopher"}, stdout, stderr, code, `unknown protocol "gopher"`)
}

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/internal/testutil"
)

// TestNBDLoadSnapshot: thinblk nbd -l exports an internal snapshot
// read-only, with the bytes qemu-img convert -l reads from it.
func TestNBDLoadSnapshot(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io", "nbdinfo")
	bin := testutil.Thinblk(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "s.qcow2")
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", img, "4M")
	testutil.MustRun(t, "qemu-io", "-f", "qcow2", "-c", "write -P 1 0 1M", img)
	testutil.MustRun(t, "qemu-img", "snapshot", "-c", "one", img)
	testutil.MustRun(t, "qemu-io", "-f", "qcow2", "-c", "write -P 2 0 2M", img)
	want := filepath.Join(dir, "want.raw")
	testutil.MustRun(t, "qemu-img", "convert", "-l", "one", "-O", "raw", img, want)
	for _, l := range []string{"one", "snapshot.id=1"} {
		sock := filepath.Join(t.TempDir(), "s")
		srv := startServer(t, sock, bin, "nbd", "-l", l, "-t", "-k", sock, "-f", "qcow2", img)
		url := "nbd+unix:///?socket=" + sock
		if out := testutil.MustRun(t, "nbdinfo", url); !strings.Contains(out, "is_read_only: true") {
			t.Fatalf("-l %s: export not read-only:\n%s", l, out)
		}
		got := filepath.Join(dir, "got.raw")
		os.Remove(got)
		testutil.MustRun(t, "qemu-img", "convert", "-f", "raw", "-O", "raw", url, got)
		a, _ := os.ReadFile(got)
		b, _ := os.ReadFile(want)
		if !bytes.Equal(a, b) {
			t.Fatalf("-l %s: exported bytes differ from qemu-img convert -l (%d and %d bytes)", l, len(a), len(b))
		}
		srv.stop()
	}
	_, stderr, code := testutil.Run(t, bin, "nbd", "-l", "nosuch", "-k", filepath.Join(dir, "x"), "-f", "qcow2", img)
	if code != 1 || !strings.Contains(stderr, "snapshot not found") {
		t.Fatalf("nbd -l nosuch: exit %d, %q", code, stderr)
	}
}

package tool

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/thinblk/thinblk/internal/testutil"
)

// TestConvertSnapshotMatchesQemuImg: convert -l reads an internal snapshot
// (by ID, by name, by both keys) as qemu-img convert -l does, including a
// snapshot taken before the image grew; unknown snapshots fail.
func TestConvertSnapshotMatchesQemuImg(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	img := p("s.qcow2")
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", img, "2M")
	testutil.MustRun(t, "qemu-io", "-f", "qcow2", "-c", "write -P 1 0 1M", "-c", "write -c -P 4 1M 64k", img)
	testutil.MustRun(t, "qemu-img", "snapshot", "-c", "small", img)
	testutil.MustRun(t, "qemu-img", "resize", "-q", img, "6M")
	testutil.MustRun(t, "qemu-io", "-f", "qcow2", "-c", "write -P 2 512k 4M", img)
	testutil.MustRun(t, "qemu-img", "snapshot", "-c", "big", img)
	testutil.MustRun(t, "qemu-io", "-f", "qcow2", "-c", "write -P 3 0 6M", img)
	read := func(name string) []byte {
		t.Helper()
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, l := range []string{"small", "1", "big", "2", "snapshot.name=big", "snapshot.id=1", "snapshot.id=2,snapshot.name=big"} {
		want, got := p("q.raw"), p("t.raw")
		os.Remove(want)
		os.Remove(got)
		testutil.MustRun(t, "qemu-img", "convert", "-l", l, "-O", "raw", img, want)
		if err := Convert(io.Discard, io.Discard, []string{img}, got, ConvertOptions{OutFormat: "raw", Snapshot: l}); err != nil {
			t.Fatalf("convert -l %s: %v", l, err)
		}
		if !bytes.Equal(read(got), read(want)) {
			t.Fatalf("convert -l %s: output differs from qemu-img's (%d and %d bytes)", l, len(read(got)), len(read(want)))
		}
	}
	for _, l := range []string{"nosuch", "snapshot.id=1,snapshot.name=big", "snapshot.size=1"} {
		if err := Convert(io.Discard, io.Discard, []string{img}, p("x.raw"), ConvertOptions{OutFormat: "raw", Snapshot: l}); err == nil {
			t.Errorf("convert -l %s succeeded", l)
		}
	}
}

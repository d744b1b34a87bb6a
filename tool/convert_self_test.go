package tool

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/thinblk/thinblk/internal/testutil"
	"github.com/thinblk/thinblk/protocol/file"
)

// TestConvertRefusesSourceAsTarget: an image converted onto itself, with
// or without -n, is refused with a lock error (as qemu-img refuses it) and
// left as it was; before locking, thinblk truncated it and lost its data.
func TestConvertRefusesSourceAsTarget(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	name := filepath.Join(t.TempDir(), "a.qcow2")
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", name, "4M")
	testutil.MustRun(t, "qemu-io", "-f", "qcow2", "-c", "write -P 7 0 1M", name)
	before, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	for _, noCreate := range []bool{false, true} {
		err := Convert(io.Discard, io.Discard, []string{name}, name, ConvertOptions{OutFormat: "qcow2", NoCreate: noCreate})
		if !errors.Is(err, file.ErrLocked) {
			t.Fatalf("convert onto itself (-n %v): %v, want a lock error", noCreate, err)
		}
		if after, _ := os.ReadFile(name); string(after) != string(before) {
			t.Fatalf("convert onto itself (-n %v) changed the image", noCreate)
		}
	}
	testutil.MustRun(t, "qemu-io", "-f", "qcow2", "-c", "read -P 7 0 1M", name)

	// Nor may -n write into the backing file of the source.
	top := filepath.Join(t.TempDir(), "top.qcow2")
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", name, "-F", "qcow2", top)
	err = Convert(io.Discard, io.Discard, []string{top}, name, ConvertOptions{OutFormat: "qcow2", NoCreate: true})
	if !errors.Is(err, file.ErrLocked) {
		t.Fatalf("convert -n into the source's backing file: %v, want a lock error", err)
	}
}

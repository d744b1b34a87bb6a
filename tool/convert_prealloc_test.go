package tool

import (
	"io"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/internal/testutil"
	"github.com/thinblk/thinblk/internal/workload"
)

// TestConvertIntoPreallocatedQcow2: into a target created with
// preallocation=metadata, convert writes only the non-zero granules of the
// clusters, as qemu-img does, instead of whole clusters of mostly zeros (2
// MiB clusters: 43 MB where qemu-img writes 25 MB).
func TestConvertIntoPreallocatedQcow2(t *testing.T) {
	testutil.NeedTool(t, "qemu-img")
	dir := t.TempDir()
	src := filepath.Join(dir, "src.raw")
	if err := workload.Create(src, workload.Spec{Size: 128 << 20, Data: 8 << 20, Zero: 2 << 20, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	for _, opts := range []string{"cluster_size=2M,preallocation=metadata", "cluster_size=64k,preallocation=metadata"} {
		q, o := filepath.Join(dir, "q.qcow2"), filepath.Join(dir, "t.qcow2")
		testutil.MustRun(t, "qemu-img", "convert", "-O", "qcow2", "-o", opts, src, q)
		kv, _ := image.ParseKeyValues(opts)
		if err := Convert(io.Discard, io.Discard, []string{src}, o, ConvertOptions{OutFormat: "qcow2", Options: kv, SparseSize: -1}); err != nil {
			t.Fatal(err)
		}
		syscall.Sync()
		testutil.MustRun(t, "qemu-img", "compare", "-q", src, o)
		testutil.MustRun(t, "qemu-img", "check", "-q", o)
		if got, want := testutil.HostBytes(t, o), testutil.HostBytes(t, q); got > want+4096 {
			t.Errorf("-o %s: thinblk's output occupies %d bytes, qemu-img's %d", opts, got, want)
		}
	}
}

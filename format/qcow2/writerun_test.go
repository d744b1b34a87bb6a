package qcow2

import (
	"bytes"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/internal/testutil"
	"github.com/thinblk/thinblk/protocol/mem"
)

// pwriteCounter counts the Pwrite calls that reach the file node.
type pwriteCounter struct {
	*mem.Node
	calls atomic.Int64
}

func (c *pwriteCounter) Pwrite(p []byte, off int64, f block.Flags) error {
	c.calls.Add(1)
	return c.Node.Pwrite(p, off, f)
}

// TestWholeClusterWritesAreOnePwrite: a 2 MiB cluster-aligned write to a
// fresh image goes to the file as one pwrite (data), not one per cluster;
// the metadata waits for the flush.
func TestWholeClusterWritesAreOnePwrite(t *testing.T) {
	node := &pwriteCounter{Node: mem.NewGrowable(0)}
	if err := CreateOn(node.Node, image.CreateOptions{Size: 8 << 20}); err != nil {
		t.Fatal(err)
	}
	img, err := Open(node, image.FormatOpen{Name: "count.qcow2"})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	data := bytes.Repeat([]byte{0xab}, 2<<20)
	for i, off := range []int64{0, 4 << 20} {
		before := node.calls.Load()
		if err := img.Pwrite(data, off, 0); err != nil {
			t.Fatal(err)
		}
		if n := node.calls.Load() - before; n != 1 {
			t.Fatalf("write %d: %d pwrites to the file, want 1", i, n)
		}
	}
	// Overwriting owned clusters in place: one pwrite again.
	before := node.calls.Load()
	if err := img.Pwrite(data, 0, 0); err != nil {
		t.Fatal(err)
	}
	if n := node.calls.Load() - before; n != 1 {
		t.Fatalf("in-place overwrite: %d pwrites, want 1", n)
	}
	got := make([]byte, 2<<20)
	for _, off := range []int64{0, 4 << 20} {
		if err := img.Pread(got, off); err != nil {
			t.Fatal(err)
		}
		mustEqual(t, got, data, "data")
	}
}

// TestWholeClusterWriteOverMixedClusters: one write spanning owned,
// snapshot-shared, zero, compressed and unallocated clusters reads back
// right, leaves the snapshot intact and the image clean.
func TestWholeClusterWriteOverMixedClusters(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	for _, opts := range []string{"cluster_size=65536", "extended_l2=on", "compat=0.10"} {
		t.Run(opts, func(t *testing.T) {
			dir := t.TempDir()
			name := filepath.Join(dir, "m.qcow2")
			src := filepath.Join(dir, "src.qcow2")
			run(t, "qemu-img", "create", "-q", "-f", "qcow2", src, "8M")
			run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 4M", src)
			run(t, "qemu-img", "convert", "-c", "-O", "qcow2", "-o", opts, src, name) // compressed 0-4M
			run(t, "qemu-img", "snapshot", "-c", "s1", name)
			run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x22 1M 1M", "-c", "write -P 0x33 5M 512k",
				"-c", "write -z 2M 256k", name)
			s1 := filepath.Join(dir, "s1.raw")
			run(t, "qemu-img", "convert", "-l", "snapshot.name=s1", "-O", "raw", name, s1)
			wantS1, _ := os.ReadFile(s1)

			d := openPath(t, name, false)
			want := readAll(t, d)
			data := bytes.Repeat([]byte{0x5a, 0xa5, 0x01}, 7<<20/3)
			if err := d.Pwrite(data, 64<<10, 0); err != nil {
				t.Fatal(err)
			}
			copy(want[64<<10:], data)
			mustEqual(t, readAll(t, d), want, "after the write")
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			mustBeClean(t, name)
			mustEqual(t, qemuRaw(t, name), want, "qemu-img's view")
			run(t, "qemu-img", "snapshot", "-a", "s1", name)
			mustEqual(t, qemuRaw(t, name), wantS1, "snapshot s1")
			mustBeClean(t, name)
		})
	}
}

// TestWholeClusterWriteFillsFreedHoles: on a fragmented image a long write
// takes the freed single clusters first (a run per hole) and the rest at
// the end, reads back right and leaves refcounts exact.
func TestWholeClusterWriteFillsFreedHoles(t *testing.T) {
	const cs = 64 << 10
	img := newMemImage(t, 16<<20, nil, nil)
	defer img.Close()
	if err := img.Pwrite(bytes.Repeat([]byte{1}, 32*cs), 0, 0); err != nil {
		t.Fatal(err)
	}
	for i := int64(0); i < 32; i += 2 {
		if err := img.Discard(i*cs, cs, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := img.Flush(); err != nil { // frees the discarded clusters
		t.Fatal(err)
	}
	before, _ := img.Info()
	data := bytes.Repeat([]byte{2, 3, 5, 7}, 32*cs/4)
	if err := img.Pwrite(data, 8<<20, 0); err != nil {
		t.Fatal(err)
	}
	after, _ := img.Info()
	// 16 clusters fit in the holes; 16 more come from the end.
	if grown := (after.Watermark - before.Watermark) / cs; grown > 16 {
		t.Errorf("the used area grew by %d clusters, want at most 16 (holes reused)", grown)
	}
	got := make([]byte, len(data))
	if err := img.Pread(got, 8<<20); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, data, "data written over holes")
	r, err := img.Check(RepairNone)
	if err != nil {
		t.Fatal(err)
	}
	if r.Corruptions != 0 || r.Leaks != 0 || r.CheckErrors != 0 {
		t.Fatalf("check: %+v", r)
	}
}

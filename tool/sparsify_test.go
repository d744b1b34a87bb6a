package tool

import (
	"bytes"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/internal/testutil"
	"github.com/thinblk/thinblk/internal/workload"
)

// TestSparsifyInPlace: the written-zero extents of the benchmark-shaped
// image are deallocated, in raw and in qcow2 (with and without a backing
// file), the content stays the same, and qemu-img check stays clean.
func TestSparsifyInPlace(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	dir := t.TempDir()
	spec := workload.Spec{Size: 48 << 20, Data: 6 << 20, Zero: 3 << 20, Seed: uint64(testutil.Seed(t))}
	plan, err := workload.Plan(spec)
	if err != nil {
		t.Fatal(err)
	}
	ref := filepath.Join(dir, "ref.raw")
	if err := workload.Create(ref, spec); err != nil {
		t.Fatal(err)
	}
	raw := filepath.Join(dir, "w.raw")
	testutil.MustRun(t, "cp", "--sparse=never", ref, raw)
	q := filepath.Join(dir, "w.qcow2")
	testutil.MustRun(t, "qemu-img", "convert", "-S", "0", "-f", "raw", "-O", "qcow2", ref, q)
	// An overlay whose own clusters hold written zeros over a backing file
	// with data there: they must become zero clusters, not holes that let
	// the backing show through.
	base := filepath.Join(dir, "base.qcow2")
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", base, "48M")
	testutil.MustRun(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x33 0 48M", base)
	top := filepath.Join(dir, "top.qcow2")
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", top)
	testutil.MustRun(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0 1M 2M", "-c", "write -P 5 4M 1M", top)
	topRef := filepath.Join(dir, "top-ref.raw")
	testutil.MustRun(t, "qemu-img", "convert", "-O", "raw", top, topRef)

	summary := regexp.MustCompile(`sparsify: (\d+) bytes of zeros deallocated, (-?\d+) bytes reclaimed`)
	for _, c := range []struct {
		name, format, ref string
		zeros             int64 // at least this many bytes must be deallocated
	}{{raw, "raw", ref, spec.Zero / 2}, {q, "qcow2", ref, spec.Zero / 2}, {top, "qcow2", topRef, 2 << 20}} {
		var out bytes.Buffer
		if err := Sparsify(&out, c.name, "", SparsifyOptions{Format: c.format, InPlace: true}); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		m := summary.FindStringSubmatch(out.String())
		if m == nil {
			t.Fatalf("%s: summary %q", c.name, out.String())
		}
		zeroed, _ := strconv.ParseInt(m[1], 10, 64)
		reclaimed, _ := strconv.ParseInt(m[2], 10, 64)
		if zeroed < c.zeros || reclaimed < c.zeros/2 {
			t.Errorf("%s: deallocated %d, reclaimed %d; want at least %d", c.name, zeroed, reclaimed, c.zeros)
		}
		checkSame(t, c.ref, c.name, c.format)
		if c.name == top {
			continue
		}
		// Every written-zero extent (in whole clusters) is no longer data.
		d, err := image.Open(c.name, image.Options{Format: c.format, ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		unit := int64(4096)
		if c.format == "qcow2" {
			unit = 64 << 10
		}
		for _, e := range plan {
			if !e.Zero {
				continue
			}
			for off, end := (e.Off+unit-1)/unit*unit, (e.Off+e.Len)/unit*unit; off < end; {
				x, err := d.BlockStatus(off, end-off)
				if err != nil {
					t.Fatal(err)
				}
				if x.Status&block.Data != 0 && x.Status&block.Zero == 0 {
					t.Errorf("%s: written zeros at %d+%d still stored as data", c.name, off, x.Len)
					break
				}
				off += x.Len
			}
		}
		d.Close()
	}
}

// TestSparsifyCopy: copy mode writes a compacted image of the same format
// (compressed on request) that reads the same.
func TestSparsifyCopy(t *testing.T) {
	testutil.NeedTool(t, "qemu-img")
	dir := t.TempDir()
	src := filepath.Join(dir, "w.qcow2")
	ref := filepath.Join(dir, "w.raw")
	if err := workload.Create(ref, workload.Spec{Size: 32 << 20, Data: 4 << 20, Zero: 2 << 20, Seed: 4}); err != nil {
		t.Fatal(err)
	}
	testutil.MustRun(t, "qemu-img", "convert", "-S", "0", "-f", "raw", "-O", "qcow2", ref, src)
	for _, compress := range []bool{false, true} {
		out := filepath.Join(dir, "out.qcow2")
		if err := Sparsify(&bytes.Buffer{}, src, out, SparsifyOptions{Compress: compress}); err != nil {
			t.Fatal(err)
		}
		checkSame(t, ref, out, "qcow2")
		if got, was := testutil.HostBytes(t, out), testutil.HostBytes(t, src); got > was/4 {
			t.Errorf("compress=%v: the copy occupies %d bytes, the fully allocated source %d", compress, got, was)
		}
	}
	if err := Sparsify(&bytes.Buffer{}, src, "", SparsifyOptions{}); err == nil {
		t.Error("copy mode without an output accepted")
	}
}

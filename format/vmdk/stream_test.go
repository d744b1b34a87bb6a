package vmdk

import (
	"bytes"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/internal/formattest"
	"github.com/thinblk/thinblk/internal/testutil"
)

var streamOpts = map[string]string{"subformat": "streamOptimized"}

// TestStreamWriterRandom writes random front-to-back data, zeros and holes
// into a streamOptimized disk we create, then qemu-img checks it and calls
// it identical to the model, and our reader agrees with qemu-img map.
func TestStreamWriterRandom(t *testing.T) {
	seed := testutil.Seed(t)
	rng := rand.New(rand.NewSource(seed))
	dir := t.TempDir()
	name := filepath.Join(dir, "s.vmdk")
	const size = 7<<20 + 3*512
	if err := image.Create(name, "vmdk", image.CreateOptions{Size: size, Options: streamOpts}); err != nil {
		t.Fatal(err)
	}
	d, err := image.Open(name, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !d.Caps().Write {
		t.Fatal("an empty streamOptimized disk opened writable is not writable")
	}
	model := make([]byte, size)
	for off := int64(0); off < size; {
		n := min(size-off, 1+rng.Int63n(200<<10))
		switch rng.Intn(4) {
		case 0: // hole
		case 1:
			if err := d.WriteZeroes(off, n, 0); err != nil {
				t.Fatalf("write-zeroes %d+%d: %v", off, n, err)
			}
		default:
			p := make([]byte, n)
			for i := range p {
				p[i] = byte(rng.Intn(4)) // compressible, rarely all zero
			}
			if err := d.Pwrite(p, off, 0); err != nil {
				t.Fatalf("pwrite %d+%d: %v", off, n, err)
			}
			copy(model[off:], p)
		}
		off += n
	}
	// Reads of what was written, before the tail exists.
	got := make([]byte, size)
	if err := d.Pread(got, 0); err != nil || !bytes.Equal(got, model) {
		t.Fatalf("read back before flush: %v, equal %v", err, bytes.Equal(got, model))
	}
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	ref := filepath.Join(dir, "model.raw")
	if err := os.WriteFile(ref, model, 0o644); err != nil {
		t.Fatal(err)
	}
	formattest.QemuImg(t, "check", "-f", "vmdk", name)
	formattest.QemuImg(t, "compare", "-f", "vmdk", "-F", "raw", name, ref)
	compareWithQemu(t, name, 64<<10, false)
	// Opened again writable, a disk with grains is read-only.
	d, err = image.Open(name, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Pwrite([]byte{1}, size-1, 0); !errors.Is(err, block.ErrReadOnly) {
		t.Fatalf("write into a finished stream = %v, want ErrReadOnly", err)
	}
}

// TestStreamWriterOrder: a write behind the stream fails with
// ErrNotSupported; writing into the buffered grain and zeroing never-stored
// grains are fine.
func TestStreamWriterOrder(t *testing.T) {
	name := filepath.Join(t.TempDir(), "o.vmdk")
	if err := image.Create(name, "vmdk", image.CreateOptions{Size: 1 << 20, Options: streamOpts}); err != nil {
		t.Fatal(err)
	}
	d, err := image.Open(name, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(d.Pwrite(bytes.Repeat([]byte{7}, 100), 128<<10, 0))
	must(d.Pwrite(bytes.Repeat([]byte{8}, 100), 128<<10+50, 0)) // same grain
	must(d.WriteZeroes(0, 64<<10, 0))                           // never stored
	must(d.Pwrite(bytes.Repeat([]byte{9}, 10), 512<<10, 0))
	if err := d.Pwrite([]byte{1}, 128<<10, 0); !errors.Is(err, block.ErrNotSupported) {
		t.Fatalf("write behind the stream = %v, want ErrNotSupported", err)
	}
	if err := d.WriteZeroes(128<<10, 10, 0); !errors.Is(err, block.ErrNotSupported) {
		t.Fatalf("zeroing a stored grain = %v, want ErrNotSupported", err)
	}
	b := make([]byte, 200)
	must(d.Pread(b, 128<<10))
	if b[0] != 7 || b[50] != 8 || b[149] != 8 || b[150] != 0 {
		t.Fatalf("read back % x", b[:160])
	}
}

// TestStreamEmpty: a created disk with nothing written is complete:
// qemu-img reads it as zeros of the right size.
func TestStreamEmpty(t *testing.T) {
	name := filepath.Join(t.TempDir(), "e.vmdk")
	if err := image.Create(name, "vmdk", image.CreateOptions{Size: 3<<20 + 1, Options: streamOpts}); err != nil {
		t.Fatal(err)
	}
	out := formattest.QemuImg(t, "info", name)
	if !strings.Contains(out, "(3146240 bytes)") || !strings.Contains(out, "streamOptimized") {
		t.Fatalf("qemu-img info:\n%s", out)
	}
	formattest.QemuImg(t, "check", name)
	compareWithQemu(t, name, 64<<10, false)
	if err := image.Create(name, "vmdk", image.CreateOptions{Size: 1 << 20, Options: map[string]string{"subformat": "monolithicFlat"}}); !errors.Is(err, block.ErrNotSupported) {
		t.Fatalf("create monolithicFlat = %v, want ErrNotSupported", err)
	}
}

// TestThinblkConvertStream: `thinblk convert -O vmdk -o
// subformat=streamOptimized` of a qcow2 gives a disk qemu-img checks,
// compares identical, and converts back.
func TestThinblkConvertStream(t *testing.T) {
	tb := testutil.Thinblk(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src.qcow2")
	formattest.QemuImg(t, "create", "-f", "qcow2", src, "6M")
	formattest.QemuIO(t, "qcow2", src, "write -P 0x61 0 1M", "write -P 0x62 3M 4k", "write -z 4M 1M", "write -P 0x63 5M 100k")
	dst := filepath.Join(dir, "out.vmdk")
	testutil.MustRun(t, tb, "convert", "-O", "vmdk", "-o", "subformat=streamOptimized", src, dst)
	formattest.QemuImg(t, "check", "-f", "vmdk", dst)
	formattest.QemuImg(t, "compare", "-f", "qcow2", "-F", "vmdk", src, dst)
	back := filepath.Join(dir, "back.raw")
	formattest.QemuImg(t, "convert", "-f", "vmdk", "-O", "raw", dst, back)
	formattest.QemuImg(t, "compare", "-f", "qcow2", "-F", "raw", src, back)
	// Only the grains with data are stored.
	got := formattest.QemuMap(t, dst, "vmdk", 6<<20, 1<<20)
	if s := strings.Join(got, " "); s != "data@0 hole hole data@0+hole hole data@0+hole" {
		t.Fatalf("qemu-img map at 1 MiB: %s", s)
	}
	testutil.MustRun(t, tb, "convert", "-O", "vmdk", "-c", "-o", "subformat=streamOptimized", src, dst+"2")
	formattest.QemuImg(t, "compare", "-f", "qcow2", "-F", "vmdk", src, dst+"2")
}

// TestStreamFlushMidGrain: a Flush in the middle of a grain leaves a
// complete disk, later writes to the same grain still work, and a grain
// that becomes all zeros after a Flush disappears (the stale provisional
// footer is cut off).
func TestStreamFlushMidGrain(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "f.vmdk")
	if err := image.Create(name, "vmdk", image.CreateOptions{Size: 1 << 20, Options: streamOpts}); err != nil {
		t.Fatal(err)
	}
	d, err := image.Open(name, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(d.Pwrite(bytes.Repeat([]byte{1}, 4096), 0, 0))
	must(d.Flush())
	// The file is complete now: qemu-img reads the first 4 KiB.
	mid := filepath.Join(dir, "mid.raw")
	formattest.QemuImg(t, "convert", "-U", "-f", "vmdk", "-O", "raw", name, mid)
	if b, err := os.ReadFile(mid); err != nil || b[0] != 1 || b[4095] != 1 || b[4096] != 0 {
		t.Fatalf("disk after a mid-grain flush: %v", err)
	}
	must(d.Pwrite(bytes.Repeat([]byte{2}, 4096), 4096, 0)) // same grain
	must(d.Flush())
	must(d.Pwrite(bytes.Repeat([]byte{3}, 10), 128<<10, 0))
	must(d.Flush())
	must(d.WriteZeroes(128<<10, 10, 0)) // the buffered grain becomes zero
	must(d.Close())
	model := make([]byte, 1<<20)
	copy(model, bytes.Repeat([]byte{1}, 4096))
	copy(model[4096:], bytes.Repeat([]byte{2}, 4096))
	ref := filepath.Join(dir, "model.raw")
	must(os.WriteFile(ref, model, 0o644))
	formattest.QemuImg(t, "check", "-f", "vmdk", name)
	formattest.QemuImg(t, "compare", "-f", "vmdk", "-F", "raw", name, ref)
	compareWithQemu(t, name, 64<<10, false)
}

package vdi

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

// TestWriteRandom writes random ranges (data and zeros) into a dynamic
// image we create, checks every read against a model, then has qemu-img
// check the image and compare it to the model.
func TestWriteRandom(t *testing.T) {
	seed := testutil.Seed(t)
	rng := rand.New(rand.NewSource(seed))
	dir := t.TempDir()
	name := filepath.Join(dir, "w.vdi")
	const size = 13<<20 + 512
	if err := image.Create(name, "vdi", image.CreateOptions{Size: size}); err != nil {
		t.Fatal(err)
	}
	d, err := image.Open(name, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	model := make([]byte, size)
	for i := 0; i < 200; i++ {
		off := rng.Int63n(size)
		n := 1 + rng.Int63n(min(size-off, 3<<20))
		switch rng.Intn(4) {
		case 0:
			if err := d.WriteZeroes(off, n, 0); err != nil {
				t.Fatalf("op %d: write-zeroes %d+%d: %v", i, off, n, err)
			}
			clear(model[off : off+n])
		default:
			p := make([]byte, n)
			rng.Read(p[:min(n, 4096)])
			for o := int64(4096); o < n; o += 4096 {
				copy(p[o:], p[:4096]) // cheap varied content
			}
			if err := d.Pwrite(p, off, 0); err != nil {
				t.Fatalf("op %d: pwrite %d+%d: %v", i, off, n, err)
			}
			copy(model[off:], p)
		}
		if i%20 == 0 {
			roff := rng.Int63n(size)
			got := make([]byte, 1+rng.Int63n(min(size-roff, 2<<20)))
			if err := d.Pread(got, roff); err != nil || !bytes.Equal(got, model[roff:roff+int64(len(got))]) {
				t.Fatalf("op %d: read %d+%d: %v, equal %v", i, roff, len(got), err, bytes.Equal(got, model[roff:roff+int64(len(got))]))
			}
		}
	}
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	d.Close()
	ref := filepath.Join(dir, "model.raw")
	if err := os.WriteFile(ref, model, 0o644); err != nil {
		t.Fatal(err)
	}
	formattest.QemuImg(t, "check", "-f", "vdi", name)
	formattest.QemuImg(t, "compare", "-f", "vdi", "-F", "raw", name, ref)
	compareWithQemu(t, name, 1<<20)
}

// TestWriteZeroesDoesNotAllocate: zeroing unallocated blocks keeps them
// unallocated; NoFallback fails on allocated blocks.
func TestWriteZeroesDoesNotAllocate(t *testing.T) {
	name := filepath.Join(t.TempDir(), "z.vdi")
	if err := image.Create(name, "vdi", image.CreateOptions{Size: 4 << 20}); err != nil {
		t.Fatal(err)
	}
	d, err := image.Open(name, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.WriteZeroes(0, 4<<20, block.NoFallback); err != nil {
		t.Fatalf("WriteZeroes over unallocated blocks: %v", err)
	}
	if e, err := d.BlockStatus(0, 4<<20); err != nil || e.Status&block.Allocated != 0 || e.Len != 4<<20 {
		t.Fatalf("status after WriteZeroes = %+v, %v; want 4 MiB unallocated", e, err)
	}
	if err := d.Pwrite([]byte{1}, 1<<20+5, 0); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteZeroes(1<<20, 4096, block.NoFallback); !errors.Is(err, block.ErrNotSupported) {
		t.Fatalf("WriteZeroes(NoFallback) on an allocated block = %v, want ErrNotSupported", err)
	}
	if e, err := d.BlockStatus(1<<20, 1<<20); err != nil || e.Status != block.Data|block.Allocated {
		t.Fatalf("written block status = %+v, %v", e, err)
	}
}

// TestThinblkCreateConvert: `thinblk create -f vdi` and `thinblk convert
// -O vdi` make images qemu-img checks and calls identical to the source.
func TestThinblkCreateConvert(t *testing.T) {
	tb := testutil.Thinblk(t)
	dir := t.TempDir()
	created := filepath.Join(dir, "c.vdi")
	testutil.MustRun(t, tb, "create", "-f", "vdi", created, "5M")
	out := formattest.QemuImg(t, "info", created)
	if !strings.Contains(out, "file format: vdi") || !strings.Contains(out, "5 MiB") {
		t.Fatalf("qemu-img info of thinblk's vdi:\n%s", out)
	}
	formattest.QemuImg(t, "check", created)

	src := filepath.Join(dir, "src.qcow2")
	formattest.QemuImg(t, "create", "-f", "qcow2", src, "10M")
	formattest.QemuIO(t, "qcow2", src, "write -P 0x61 0 1M", "write -P 0x62 5M 4k", "write -z 6M 1M", "write -P 0x63 9M 1M")
	dst := filepath.Join(dir, "out.vdi")
	testutil.MustRun(t, tb, "convert", "-O", "vdi", src, dst)
	formattest.QemuImg(t, "check", "-f", "vdi", dst)
	formattest.QemuImg(t, "compare", "-f", "qcow2", "-F", "vdi", src, dst)
	// Only the blocks with data are allocated.
	wantMap := formattest.QemuMap(t, dst, "vdi", 10<<20, 1<<20)
	want := "data@0 zero@0 zero@0 zero@0 zero@0 data@0 zero@0 zero@0 zero@0 data@0"
	if got := strings.Join(wantMap, " "); got != want {
		t.Fatalf("qemu-img map of the converted vdi: %s, want %s", got, want)
	}
}

// TestCreateStatic: a static image we create passes qemu-img check, reads
// as zeros and is fully mapped.
func TestCreateStatic(t *testing.T) {
	name := filepath.Join(t.TempDir(), "s.vdi")
	if err := image.Create(name, "vdi", image.CreateOptions{Size: 3 << 20, Options: map[string]string{"static": "on"}}); err != nil {
		t.Fatal(err)
	}
	formattest.QemuImg(t, "check", "-f", "vdi", name)
	compareWithQemu(t, name, 1<<20)
	d, err := image.Open(name, image.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if e, err := d.BlockStatus(0, 3<<20); err != nil || e.Status != block.Data|block.Allocated || e.Len != 3<<20 {
		t.Fatalf("static image status = %+v, %v; want 3 MiB allocated", e, err)
	}
	for _, bad := range []map[string]string{{"static": "maybe"}, {"block_size": "1000"}, {"cluster_size": "1M"}} {
		if err := image.Create(name, "vdi", image.CreateOptions{Size: 1 << 20, Options: bad}); !errors.Is(err, block.ErrInvalid) {
			t.Errorf("create with %v = %v, want ErrInvalid", bad, err)
		}
	}
}

package vmdk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/block/blocktest"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/internal/formattest"
	"github.com/thinblk/thinblk/internal/testutil"
)

// TestBlocktestSparse runs the conformance suite (random operations
// against a model, a concurrent phase, reopen) on monolithicSparse disks
// we create, with and without zeroed grains.
func TestBlocktestSparse(t *testing.T) {
	for _, opts := range []map[string]string{{}, {"zeroed_grain": "on"}} {
		t.Run(fmt.Sprint(opts), func(t *testing.T) {
			var name string
			open := func(t *testing.T, size int64) block.Driver {
				name = filepath.Join(t.TempDir(), "b.vmdk")
				if err := image.Create(name, "vmdk", image.CreateOptions{Size: size, Options: opts}); err != nil {
					t.Fatal(err)
				}
				d, err := image.Open(name, image.Options{Format: "vmdk"})
				if err != nil {
					t.Fatal(err)
				}
				return d
			}
			blocktest.Run(t, open, blocktest.Options{
				Size: 3<<20 + 512, Ops: 300, Concurrent: true,
				Reopen: func(d block.Driver) (block.Driver, error) {
					if err := d.Close(); err != nil {
						return nil, err
					}
					return image.Open(name, image.Options{Format: "vmdk"})
				},
			})
		})
	}
}

// TestSparseWriteRandom writes random data and zeros into a delta disk we
// create over a parent with data, then qemu-img checks it and calls it
// identical to the model, and our map agrees with qemu-img's.
func TestSparseWriteRandom(t *testing.T) {
	seed := testutil.Seed(t)
	rng := rand.New(rand.NewSource(seed))
	dir := t.TempDir()
	base := filepath.Join(dir, "base.vmdk")
	top := filepath.Join(dir, "top.vmdk")
	const size = 5<<20 + 512
	if err := image.Create(base, "vmdk", image.CreateOptions{Size: size}); err != nil {
		t.Fatal(err)
	}
	formattest.QemuIO(t, "vmdk", base, "write -P 0x41 0 1M", "write -P 0x42 3M 2M")
	if err := image.Create(top, "vmdk", image.CreateOptions{Backing: "base.vmdk", BackingFormat: "vmdk", Options: map[string]string{"zeroed_grain": "on"}}); err != nil {
		t.Fatal(err)
	}
	d, err := image.Open(top, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Size() != size {
		t.Fatalf("delta disk size %d, want the parent's %d", d.Size(), size)
	}
	model := make([]byte, size)
	if err := d.Pread(model, 0); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 150; i++ {
		off := rng.Int63n(size)
		n := 1 + rng.Int63n(min(size-off, 300<<10))
		switch rng.Intn(3) {
		case 0:
			flags := block.Flags(0)
			if rng.Intn(2) == 0 {
				flags = block.MayUnmap
			}
			if err := d.WriteZeroes(off, n, flags); err != nil {
				t.Fatalf("op %d: write-zeroes %d+%d: %v", i, off, n, err)
			}
			clear(model[off : off+n])
		default:
			p := make([]byte, n)
			rng.Read(p)
			if err := d.Pwrite(p, off, 0); err != nil {
				t.Fatalf("op %d: pwrite %d+%d: %v", i, off, n, err)
			}
			copy(model[off:], p)
		}
	}
	got := make([]byte, size)
	if err := d.Pread(got, 0); err != nil || !bytes.Equal(got, model) {
		t.Fatalf("read back: %v, equal %v", err, bytes.Equal(got, model))
	}
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	d.Close()
	ref := filepath.Join(dir, "model.raw")
	if err := os.WriteFile(ref, model, 0o644); err != nil {
		t.Fatal(err)
	}
	formattest.QemuImg(t, "check", "-f", "vmdk", top)
	formattest.QemuImg(t, "compare", "-f", "vmdk", "-F", "raw", top, ref)
	compareWithQemu(t, top, 64<<10, false)
}

// TestThinblkConvertSparse: `thinblk convert -O vmdk` (monolithicSparse,
// the default) gives a disk qemu-img checks and compares identical, with
// only the grains holding data allocated.
func TestThinblkConvertSparse(t *testing.T) {
	tb := testutil.Thinblk(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src.qcow2")
	formattest.QemuImg(t, "create", "-f", "qcow2", src, "6M")
	formattest.QemuIO(t, "qcow2", src, "write -P 0x61 0 1M", "write -P 0x62 3M 4k", "write -z 4M 1M", "write -P 0x63 5M 100k")
	dst := filepath.Join(dir, "out.vmdk")
	testutil.MustRun(t, tb, "convert", "-O", "vmdk", src, dst)
	formattest.QemuImg(t, "check", "-f", "vmdk", dst)
	formattest.QemuImg(t, "compare", "-f", "qcow2", "-F", "vmdk", src, dst)
	compareWithQemu(t, dst, 64<<10, false)
	got := formattest.QemuMap(t, dst, "vmdk", 6<<20, 1<<20)
	if s := fmt.Sprint(got); s != "[data@0 hole hole data@0+hole hole data@0+hole]" {
		t.Fatalf("qemu-img map at 1 MiB: %s", s)
	}
}

// TestRedundantTables: writing into a qemu-img disk, which keeps a
// redundant grain directory, updates both sets of grain tables alike.
func TestRedundantTables(t *testing.T) {
	name := filepath.Join(t.TempDir(), "r.vmdk")
	formattest.QemuImg(t, "create", "-f", "vmdk", name, "70M")
	d, err := image.Open(name, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, 1 << 20, 40 << 20} {
		if err := d.Pwrite([]byte("grain"), off, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	h, err := parseSparseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.Flags&flagRedundantGT == 0 {
		t.Skip("qemu-img made no redundant grain directory")
	}
	gtBytes := int64(h.NumGTEsPerGT) * 4
	used := 0
	for i := range int64(h.numGDEs()) {
		gd := int64(binary.LittleEndian.Uint32(b[int64(h.GDOffset)*sectorSize+i*4:]))
		rgd := int64(binary.LittleEndian.Uint32(b[int64(h.RGDOffset)*sectorSize+i*4:]))
		primary := b[gd*sectorSize : gd*sectorSize+gtBytes]
		if !bytes.Equal(primary, b[rgd*sectorSize:rgd*sectorSize+gtBytes]) {
			t.Fatalf("grain table %d differs from its redundant copy", i)
		}
		if !bytes.Equal(primary, make([]byte, gtBytes)) {
			used++
		}
	}
	if used != 2 {
		t.Fatalf("%d grain tables have entries, want 2", used)
	}
	formattest.QemuImg(t, "check", name)
}

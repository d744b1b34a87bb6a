package vmdk

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/internal/formattest"
	"github.com/thinblk/thinblk/internal/testutil"
)

// pattern writes data, written zeros and holes at grain-aligned offsets of
// a 4 MiB disk (64 KiB grains), and one unaligned write.
var pattern = []string{
	"write -P 0xab 0 64k",
	"write -P 0xcd 128k 192k",
	"write -z 512k 128k",
	"write -P 0x11 1M 4k",
	"write -P 0x22 1100k 100",
	"write -z 2M 64k",
	"write -P 0x33 4032k 64k",
}

func TestReadSubformats(t *testing.T) {
	for _, sub := range []string{"monolithicSparse", "streamOptimized", "monolithicFlat", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat"} {
		t.Run(sub, func(t *testing.T) {
			name := filepath.Join(t.TempDir(), "d.vmdk")
			formattest.QemuImg(t, "create", "-f", "vmdk", "-o", "subformat="+sub, name, "4M")
			if sub == "streamOptimized" {
				// qemu writes streamOptimized only sequentially: convert.
				src := filepath.Join(t.TempDir(), "src.qcow2")
				formattest.QemuImg(t, "create", "-f", "qcow2", src, "4M")
				formattest.QemuIO(t, "qcow2", src, pattern...)
				formattest.QemuImg(t, "convert", "-f", "qcow2", "-O", "vmdk", "-o", "subformat=streamOptimized", src, name)
			} else {
				formattest.QemuIO(t, "vmdk", name, pattern...)
			}
			compareWithQemu(t, name, 64<<10, strings.Contains(sub, "Flat"))
		})
	}
}

// TestZeroedGrains: with zeroed_grain=on, qemu writes zeros as GTE 1,
// which we must report as Zero (not data, not a hole).
func TestZeroedGrains(t *testing.T) {
	name := filepath.Join(t.TempDir(), "z.vmdk")
	formattest.QemuImg(t, "create", "-f", "vmdk", "-o", "zeroed_grain=on", name, "4M")
	formattest.QemuIO(t, "vmdk", name, pattern...)
	compareWithQemu(t, name, 64<<10, false)
	d, err := image.Open(name, image.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	e, err := d.BlockStatus(512<<10, 128<<10)
	if err != nil || e.Status != block.Zero || e.Len != 128<<10 {
		t.Fatalf("status of written zeros = %+v, %v; want Zero for 128 KiB", e, err)
	}
}

// TestDescriptorExtents: a hand-written descriptor of a FLAT extent at an
// offset, a ZERO extent and a SPARSE extent reads as qemu reads it.
func TestDescriptorExtents(t *testing.T) {
	dir := t.TempDir()
	flat := filepath.Join(dir, "part one.bin")
	data := make([]byte, 3<<20)
	for i := range data {
		data[i] = byte(i*7 + i>>12)
	}
	clear(data[1<<20 : 2<<20]) // read as zeros
	if err := os.WriteFile(flat, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sparse := filepath.Join(dir, "sparse.vmdk")
	formattest.QemuImg(t, "create", "-f", "vmdk", sparse, "2M")
	formattest.QemuIO(t, "vmdk", sparse, "write -P 0x5a 64k 64k", "write -P 0x5b 1M 4k")
	head := "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType=\"twoGbMaxExtentSparse\"\n\n# Extent description\n"
	tail := "\n# The Disk Data Base\n#DDB\nddb.adapterType = \"ide\"\n"
	// qemu reads RW FLAT and SPARSE extents (it skips ZERO and RDONLY lines).
	name := filepath.Join(dir, "multi.vmdk")
	desc := head + "RW 2048 FLAT \"part one.bin\" 1024\n" + "RW 4096 SPARSE \"sparse.vmdk\"\n" + tail
	if err := os.WriteFile(name, []byte(desc), 0o644); err != nil {
		t.Fatal(err)
	}
	compareWithQemu(t, name, 64<<10, true)

	// The same with a ZERO extent between them and the sparse one RDONLY.
	name2 := filepath.Join(dir, "multi2.vmdk")
	desc = head + "RW 2048 FLAT \"part one.bin\" 1024\n" + "RW 1024 ZERO\n" + "RDONLY 4096 SPARSE \"sparse.vmdk\"\n" + tail
	if err := os.WriteFile(name2, []byte(desc), 0o644); err != nil {
		t.Fatal(err)
	}
	d1, err := image.Open(name, image.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d1.Close()
	d, err := image.Open(name2, image.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Size() != (2048+1024+4096)*512 {
		t.Fatalf("size %d, want the sum of the extents", d.Size())
	}
	want := make([]byte, d1.Size())
	if err := d1.Pread(want, 0); err != nil {
		t.Fatal(err)
	}
	want = append(append(append([]byte(nil), want[:1<<20]...), make([]byte, 512<<10)...), want[1<<20:]...)
	got := make([]byte, d.Size())
	if err := d.Pread(got, 0); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read with a ZERO extent: %v, equal %v", err, bytes.Equal(got, want))
	}
	if e, err := d.BlockStatus(1<<20, 1<<20); err != nil || e.Status != block.Zero || e.Len != 512<<10 {
		t.Fatalf("ZERO extent status = %+v, %v", e, err)
	}
	if e, err := d.BlockStatus(1536<<10+64<<10, 1<<20); err != nil || e.Status&block.Data == 0 || e.Len != 64<<10 {
		t.Fatalf("sparse extent data status = %+v, %v", e, err)
	}
	info, err := d.Info()
	if err != nil {
		t.Fatal(err)
	}
	sp, ok := info.Specific.(*Specific)
	if !ok || sp.CID != 0x12345678 || sp.CreateType != "twoGbMaxExtentSparse" || len(sp.Extents) != 3 ||
		sp.Extents[0].Format != "FLAT" || sp.Extents[1].Format != "ZERO" || sp.Extents[2].ClusterSize != 64<<10 {
		t.Fatalf("Specific = %+v", info.Specific)
	}
}

// TestParentChain: a delta disk over a monolithicSparse parent reads
// parent data through its holes, and map depths match qemu-img's.
func TestParentChain(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.vmdk")
	formattest.QemuImg(t, "create", "-f", "vmdk", base, "4M")
	formattest.QemuIO(t, "vmdk", base, "write -P 0x41 0 1M", "write -P 0x42 3M 1M")
	top := filepath.Join(dir, "top.vmdk")
	formattest.QemuImg(t, "create", "-f", "vmdk", "-b", "base.vmdk", "-F", "vmdk", top)
	formattest.QemuIO(t, "vmdk", top, "write -P 0x43 512k 64k", "write -z 3M 128k")
	compareWithQemu(t, top, 64<<10, false)

	d, err := image.Open(top, image.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if bf, ok := block.As[image.BackingFiler](d); !ok {
		t.Fatal("no BackingFiler")
	} else if n, _ := bf.BackingFile(); n != "base.vmdk" {
		t.Fatalf("BackingFile = %q, want base.vmdk", n)
	}
	// Without the chain, the holes read as zeros.
	nb, err := image.Open(top, image.Options{ReadOnly: true, NoBacking: true})
	if err != nil {
		t.Fatal(err)
	}
	defer nb.Close()
	b := make([]byte, 4096)
	if err := nb.Pread(b, 0); err != nil || !bytes.Equal(b, make([]byte, 4096)) {
		t.Fatalf("NoBacking read of a hole: %v, zero %v", err, bytes.Equal(b, make([]byte, 4096)))
	}
	if err := d.Pread(b, 0); err != nil || b[0] != 0x41 {
		t.Fatalf("read through the parent: %v, byte %#x want 0x41", err, b[0])
	}
}

// TestReadOnly: a read-only open, and a writable open of a disk thinblk
// does not write (monolithicFlat), refuse writes with block.ErrReadOnly.
func TestReadOnly(t *testing.T) {
	dir := t.TempDir()
	sparse := filepath.Join(dir, "r.vmdk")
	formattest.QemuImg(t, "create", "-f", "vmdk", sparse, "1M")
	flat := filepath.Join(dir, "f.vmdk")
	formattest.QemuImg(t, "create", "-f", "vmdk", "-o", "subformat=monolithicFlat", flat, "1M")
	for _, c := range []struct {
		name string
		o    image.Options
	}{{sparse, image.Options{ReadOnly: true}}, {flat, image.Options{}}} {
		d, err := image.Open(c.name, c.o)
		if err != nil {
			t.Fatal(err)
		}
		if d.Caps().Write {
			t.Fatalf("%s: Caps().Write is true", c.name)
		}
		if err := d.Pwrite(make([]byte, 512), 0, 0); !errors.Is(err, block.ErrReadOnly) {
			t.Fatalf("%s: Pwrite = %v, want ErrReadOnly", c.name, err)
		}
		if err := d.WriteZeroes(0, 512, 0); !errors.Is(err, block.ErrReadOnly) {
			t.Fatalf("%s: WriteZeroes = %v, want ErrReadOnly", c.name, err)
		}
		d.Close()
	}
}

// TestConcurrentReads: parallel reads of a compressed and a plain sparse
// disk return what qemu-img reads (run with -race).
func TestConcurrentReads(t *testing.T) {
	seed := testutil.Seed(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src.qcow2")
	formattest.QemuImg(t, "create", "-f", "qcow2", src, "4M")
	formattest.QemuIO(t, "qcow2", src, pattern...)
	for _, sub := range []string{"streamOptimized", "monolithicSparse"} {
		name := filepath.Join(dir, sub+".vmdk")
		formattest.QemuImg(t, "convert", "-f", "qcow2", "-O", "vmdk", "-o", "subformat="+sub, src, name)
		raw := filepath.Join(dir, sub+".raw")
		formattest.QemuImg(t, "convert", "-f", "vmdk", "-O", "raw", name, raw)
		want, err := os.ReadFile(raw)
		if err != nil {
			t.Fatal(err)
		}
		d, err := image.Open(name, image.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewSource(seed + int64(w)))
				for range 200 {
					off := rng.Int63n(int64(len(want)))
					b := make([]byte, 1+rng.Int63n(min(int64(len(want))-off, 300<<10)))
					if err := d.Pread(b, off); err != nil {
						errs <- err
						return
					}
					if !bytes.Equal(b, want[off:off+int64(len(b))]) {
						errs <- fmt.Errorf("%s: read %d+%d differs", sub, off, len(b))
						return
					}
				}
			}()
		}
		wg.Wait()
		d.Close()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
}

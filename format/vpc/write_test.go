package vpc

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/internal/formattest"
	"github.com/thinblk/thinblk/internal/testutil"
	"github.com/thinblk/thinblk/protocol/mem"
)

// TestCreateSizeLikeQemu: without force_size our fixed images get the same
// virtual size (CHS rounding) as qemu-img's; with it, the exact size.
func TestCreateSizeLikeQemu(t *testing.T) {
	testutil.NeedTool(t, "qemu-img")
	dir := t.TempDir()
	for _, size := range []int64{512, 1 << 20, 10 << 20, 10000384, 127 << 20, 1 << 30, 3<<30 + 512, 200 << 30, 2000 << 30} {
		for i, force := range []bool{false, true, false, true} {
			sub := []string{"fixed", "dynamic"}[i/2]
			ours := filepath.Join(dir, "ours.vhd")
			theirs := filepath.Join(dir, "theirs.vhd")
			o := map[string]string{"subformat": sub}
			opts := "subformat=" + sub
			if force {
				o["force_size"] = "on"
				opts += ",force_size=on"
			}
			if err := image.Create(ours, "vpc", image.CreateOptions{Size: size, Options: o}); err != nil {
				t.Fatal(err)
			}
			formattest.RunCmd(t, "qemu-img", "create", "-q", "-f", "vpc", "-o", opts, theirs, fmt.Sprint(size))
			d := formattest.OpenImage(t, ours, "vpc")
			want := qemuSize(t, theirs)
			if d.Size() != want {
				t.Errorf("%s size %d force_size=%v: ours %d, qemu-img's %d", sub, size, force, d.Size(), want)
			}
			if got := qemuSize(t, ours); got != d.Size() {
				t.Errorf("%s size %d force_size=%v: qemu-img reads our image as %d bytes, we as %d", sub, size, force, got, d.Size())
			}
			d.Close()
			os.Remove(ours)
			os.Remove(theirs)
		}
	}
}

func qemuSize(t *testing.T, name string) int64 {
	out := formattest.RunCmd(t, "qemu-img", "info", "-f", "vpc", "--output=json", name)
	var size int64
	i := strings.Index(string(out), `"virtual-size": `)
	if i < 0 {
		t.Fatalf("qemu-img info: %s", out)
	}
	fmt.Sscan(string(out[i+len(`"virtual-size": `):]), &size)
	return size
}

// TestWriteDynamic writes random data and zeros through a dynamic image
// we created, and has qemu-img compare it with the model and map it as we
// do.
func TestWriteDynamic(t *testing.T) {
	testutil.NeedTool(t, "qemu-img")
	rng := rand.New(rand.NewSource(testutil.Seed(t)))
	dir := t.TempDir()
	name := filepath.Join(dir, "w.vhd")
	const size = 24 << 20
	if err := image.Create(name, "vpc", image.CreateOptions{Size: size, Options: map[string]string{"subformat": "dynamic", "force_size": "on"}}); err != nil {
		t.Fatal(err)
	}
	d, err := image.Open(name, image.Options{Format: "vpc"})
	if err != nil {
		t.Fatal(err)
	}
	model := make([]byte, size)
	for i := 0; i < 30; i++ {
		n := 1 + rng.Int63n(1<<20)
		off := rng.Int63n(size - n + 1)
		if rng.Intn(5) == 0 {
			if err := d.WriteZeroes(off, n, 0); err != nil {
				t.Fatal(err)
			}
			clear(model[off : off+n])
			continue
		}
		p := make([]byte, n)
		rng.Read(p)
		if err := d.Pwrite(p, off, 0); err != nil {
			t.Fatal(err)
		}
		copy(model[off:], p)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	ref := filepath.Join(dir, "model.raw")
	if err := os.WriteFile(ref, model, 0o644); err != nil {
		t.Fatal(err)
	}
	formattest.RunCmd(t, "qemu-img", "compare", "-f", "vpc", "-F", "raw", name, ref)
	r := formattest.OpenImage(t, name, "")
	if got, want := ourMap(t, r), qemuMap(t, name, "vpc"); !equalSpans(got, want) {
		t.Fatalf("map differs:\n ours %v\n qemu %v", got, want)
	}
	// qemu-img writes into our image, and we read what it wrote (once our
	// reader, which refuses writers as QEMU's readers do, is closed).
	r.Close()
	formattest.RunCmd(t, "qemu-io", "-f", "vpc", "-c", "write -P 0x99 20M 3M", name)
	copy(model[20<<20:23<<20], bytes.Repeat([]byte{0x99}, 3<<20))
	if i := firstDiff(formattest.ReadAll(t, formattest.OpenImage(t, name, "")), model); i >= 0 {
		t.Fatalf("after qemu-io's write content differs at %d", i)
	}
}

// TestWriteFixed writes random data through a fixed image we created and
// has qemu-img compare it with the model.
func TestWriteFixed(t *testing.T) {
	testutil.NeedTool(t, "qemu-img")
	rng := rand.New(rand.NewSource(testutil.Seed(t)))
	dir := t.TempDir()
	name := filepath.Join(dir, "w.vhd")
	const size = 16 << 20
	if err := image.Create(name, "vpc", image.CreateOptions{Size: size, Options: map[string]string{"subformat": "fixed", "force_size": "on"}}); err != nil {
		t.Fatal(err)
	}
	d, err := image.Open(name, image.Options{Format: "vpc"})
	if err != nil {
		t.Fatal(err)
	}
	if !d.Caps().Write {
		t.Fatal("a fixed VHD opened read-write is not writable")
	}
	model := make([]byte, size)
	for i := 0; i < 30; i++ {
		n := 1 + rng.Int63n(1<<20)
		off := rng.Int63n(size - n + 1)
		p := make([]byte, n)
		rng.Read(p)
		if err := d.Pwrite(p, off, 0); err != nil {
			t.Fatal(err)
		}
		copy(model[off:], p)
	}
	if err := d.Pwrite([]byte{1}, size, 0); err == nil {
		t.Fatal("a write over the footer succeeded")
	}
	d.Flush()
	d.Close()
	ref := filepath.Join(dir, "model.raw")
	if err := os.WriteFile(ref, model, 0o644); err != nil {
		t.Fatal(err)
	}
	formattest.RunCmd(t, "qemu-img", "compare", "-f", "vpc", "-F", "raw", name, ref)
	if fi, _ := os.Stat(name); fi.Size() != size+footerSize {
		t.Fatalf("file of %d bytes, want %d", fi.Size(), size+footerSize)
	}
}

// TestConvertCLI: thinblk convert -O vpc (Azure style) and back.
func TestConvertCLI(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	bin := testutil.Thinblk(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src.qcow2")
	formattest.RunCmd(t, "qemu-img", "create", "-q", "-f", "qcow2", src, "20M")
	formattest.RunCmd(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 1M", "-c", "write -P 0x22 9M 100k", src)
	out := filepath.Join(dir, "out.vhd")
	formattest.RunCmd(t, bin, "convert", "-f", "qcow2", "-O", "vpc", "-o", "subformat=fixed,force_size=on", src, out)
	formattest.RunCmd(t, "qemu-img", "compare", "-f", "qcow2", "-F", "vpc", src, out)
	if got := qemuSize(t, out); got != 20<<20 {
		t.Fatalf("qemu-img reads a %d-byte disk, want %d", got, 20<<20)
	}
	ourDyn := filepath.Join(dir, "ourdyn.vhd")
	formattest.RunCmd(t, bin, "convert", "-f", "qcow2", "-O", "vpc", "-o", "subformat=dynamic", src, ourDyn)
	formattest.RunCmd(t, "qemu-img", "compare", "-f", "qcow2", "-F", "vpc", src, ourDyn)
	dyn := filepath.Join(dir, "dyn.vhd")
	formattest.RunCmd(t, "qemu-img", "convert", "-O", "vpc", src, dyn)
	back := filepath.Join(dir, "back.raw")
	formattest.RunCmd(t, bin, "convert", "-O", "raw", dyn, back)
	formattest.RunCmd(t, "qemu-img", "compare", "-f", "vpc", "-F", "raw", dyn, back)
	info := string(formattest.RunCmd(t, bin, "info", dyn))
	for _, want := range []string{"file format: vpc", "subformat: dynamic", "block size: 2097152"} {
		if !strings.Contains(info, want) {
			t.Errorf("thinblk info lacks %q:\n%s", want, info)
		}
	}
}

// TestDynamicCrashImage: before Flush the file does not map a new block,
// yet it is a valid image (footer at the end, copy at the start); after
// Flush it maps the block.
func TestDynamicCrashImage(t *testing.T) {
	node := mem.NewGrowable(0)
	if err := CreateOn(node, image.CreateOptions{Size: 8 << 20, Options: map[string]string{"subformat": "dynamic", "force_size": "on"}}); err != nil {
		t.Fatal(err)
	}
	img, err := Open(node, image.FormatOpen{})
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("persistent")
	if err := img.Pwrite(data, 5<<20+100, 0); err != nil {
		t.Fatal(err)
	}
	snapshot := func() *Image {
		b := make([]byte, node.Size())
		if err := node.Pread(b, 0); err != nil {
			t.Fatal(err)
		}
		m := mem.New(int64(len(b)))
		if err := m.Pwrite(b, 0, 0); err != nil {
			t.Fatal(err)
		}
		c, err := Open(m, image.FormatOpen{}) // read-write: the end footer must be sound
		if err != nil {
			t.Fatalf("crash image does not open read-write: %v", err)
		}
		return c
	}
	crashed := snapshot()
	if e, _ := crashed.BlockStatus(4<<20, 2<<20); e.Status&block.Data != 0 {
		t.Fatalf("block mapped before flush: %+v", e)
	}
	if err := img.Flush(); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data))
	if err := snapshot().Pread(got, 5<<20+100); err != nil || string(got) != string(data) {
		t.Fatalf("after flush: %q %v", got, err)
	}
}

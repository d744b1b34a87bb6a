package vhdx

import (
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/internal/formattest"
	"github.com/thinblk/thinblk/internal/testutil"
	"github.com/thinblk/thinblk/protocol/mem"
)

// TestWriteQemuChecks creates images with our writer, writes random data
// and zeros through the driver (mirrored in a model), and has qemu-img
// check the image and compare it with the model.
func TestWriteQemuChecks(t *testing.T) {
	testutil.NeedTool(t, "qemu-img")
	seed := testutil.Seed(t)
	for _, tc := range []struct {
		name string
		opts map[string]string
		size int64
	}{
		{"dynamic", nil, 30<<20 + 512},
		{"dynamic-1m", map[string]string{"block_size": "1M"}, 9 << 20},
		{"fixed", map[string]string{"subformat": "fixed", "block_size": "2M"}, 7 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(seed))
			dir := t.TempDir()
			name := filepath.Join(dir, "w.vhdx")
			if err := image.Create(name, "vhdx", image.CreateOptions{Size: tc.size, Options: tc.opts}); err != nil {
				t.Fatal(err)
			}
			d, err := image.Open(name, image.Options{Format: "vhdx"})
			if err != nil {
				t.Fatal(err)
			}
			model := make([]byte, tc.size)
			for i := 0; i < 40; i++ {
				n := 1 + rng.Int63n(3<<20)
				off := rng.Int63n(tc.size - n + 1)
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
					t.Fatalf("pwrite %d+%d: %v", off, n, err)
				}
				copy(model[off:], p)
			}
			if err := d.Flush(); err != nil {
				t.Fatal(err)
			}
			if i := firstDiff(formattest.ReadAll(t, d), model); i >= 0 {
				t.Fatalf("read back differs at %d", i)
			}
			d.Close()
			ref := filepath.Join(dir, "model.raw")
			if err := os.WriteFile(ref, model, 0o644); err != nil {
				t.Fatal(err)
			}
			formattest.RunCmd(t, "qemu-img", "check", "-f", "vhdx", name)
			formattest.RunCmd(t, "qemu-img", "compare", "-f", "vhdx", "-F", "raw", name, ref)
			if i := firstDiff(formattest.QemuRaw(t, name, "vhdx"), model); i >= 0 {
				t.Fatalf("qemu-img reads a difference at %d", i)
			}
		})
	}
}

// TestConvertCLI runs thinblk convert -O vhdx and back, and thinblk info.
func TestConvertCLI(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	bin := testutil.Thinblk(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src.qcow2")
	formattest.RunCmd(t, "qemu-img", "create", "-q", "-f", "qcow2", src, "20M")
	formattest.RunCmd(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 1M", "-c", "write -P 0x22 9M 100k", "-c", "write -P 0x33 19M 1M", src)
	out := filepath.Join(dir, "out.vhdx")
	formattest.RunCmd(t, bin, "convert", "-f", "qcow2", "-O", "vhdx", "-o", "block_size=1M", src, out)
	formattest.RunCmd(t, "qemu-img", "check", "-f", "vhdx", out)
	formattest.RunCmd(t, "qemu-img", "compare", "-f", "qcow2", "-F", "vhdx", src, out)
	// Sparse: 2 MiB + 100 KiB of data in 3 blocks of 1 MiB.
	d := formattest.OpenImage(t, out, "")
	var data int64
	for _, s := range ourMap(t, d) {
		if s.Data {
			data += s.Len
		}
	}
	if data != 3<<20 {
		t.Errorf("converted image maps %d bytes of data, want %d", data, 3<<20)
	}
	back := filepath.Join(dir, "back.raw")
	formattest.RunCmd(t, bin, "convert", "-O", "raw", out, back)
	formattest.RunCmd(t, "qemu-img", "compare", "-f", "qcow2", "-F", "raw", src, back)
	info := string(formattest.RunCmd(t, bin, "info", out))
	for _, want := range []string{"file format: vhdx", "subformat: dynamic", "block size: 1048576"} {
		if !strings.Contains(info, want) {
			t.Errorf("thinblk info lacks %q:\n%s", want, info)
		}
	}
}

// TestHeaderUpdatedOnFirstWrite: the first write writes a newer header
// (next sequence number, new DataWriteGuid) over the older slot; reads
// alone change nothing.
func TestHeaderUpdatedOnFirstWrite(t *testing.T) {
	node := mem.NewGrowable(0)
	if err := CreateOn(node, image.CreateOptions{Size: 4 << 20}); err != nil {
		t.Fatal(err)
	}
	img, err := Open(node, image.FormatOpen{})
	if err != nil {
		t.Fatal(err)
	}
	before, beforeOff := *img.header, img.headerOffset
	if err := img.Pread(make([]byte, 4096), 0); err != nil {
		t.Fatal(err)
	}
	if img.headerUpdated.Load() {
		t.Fatal("a read updated the header")
	}
	for i := 0; i < 2; i++ {
		if err := img.Pwrite([]byte("data"), int64(i)*4096, 0); err != nil {
			t.Fatal(err)
		}
	}
	h, off, err := readHeaders(node)
	if err != nil {
		t.Fatal(err)
	}
	if h.SequenceNumber != before.SequenceNumber+1 || off == beforeOff || h.DataWriteGUID == before.DataWriteGUID || h.FileWriteGUID == before.FileWriteGUID {
		t.Fatalf("header after writes: seq %d at %d (before %d at %d), data guid changed %v",
			h.SequenceNumber, off, before.SequenceNumber, beforeOff, h.DataWriteGUID != before.DataWriteGUID)
	}
}

// TestBATWrittenOnFlush: before Flush the file does not map a new block
// (a crash leaves it unallocated and the image valid); after Flush it
// does.
func TestBATWrittenOnFlush(t *testing.T) {
	node := mem.NewGrowable(0)
	if err := CreateOn(node, image.CreateOptions{Size: 8 << 20, Options: map[string]string{"block_size": "1M"}}); err != nil {
		t.Fatal(err)
	}
	img, err := Open(node, image.FormatOpen{})
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("persistent")
	if err := img.Pwrite(data, 3<<20+100, 0); err != nil {
		t.Fatal(err)
	}
	snapshot := func() *Image {
		b := make([]byte, node.Size())
		if err := node.Pread(b, 0); err != nil {
			t.Fatal(err)
		}
		c, err := openBytes(b, image.FormatOpen{ReadOnly: true})
		if err != nil {
			t.Fatalf("crash image does not open: %v", err)
		}
		return c
	}
	got := make([]byte, len(data))
	crashed := snapshot()
	if e, _ := crashed.BlockStatus(3<<20, 1<<20); e.Status.Present() {
		t.Fatalf("block mapped before flush: %+v", e)
	}
	crashed.Close()
	if err := img.Flush(); err != nil {
		t.Fatal(err)
	}
	flushed := snapshot()
	if err := flushed.Pread(got, 3<<20+100); err != nil || string(got) != string(data) {
		t.Fatalf("after flush: %q %v", got, err)
	}
}

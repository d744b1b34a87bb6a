package vhdx

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/internal/formattest"
	"github.com/thinblk/thinblk/internal/testutil"
)

// The BAT interleaves a sector bitmap entry after every chunk ratio
// payload entries; with 256 MiB blocks and 512-byte sectors the ratio is
// 16, so a 5 GiB disk has blocks 16 and up after the first bitmap entry.
// Both directions are checked against qemu: we read what qemu-io wrote, and
// qemu-io reads what we wrote.
func TestChunkInterleave(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	const bs = 256 << 20
	const size = 5 << 30
	blocks := []int64{0, 15, 16, 17, 19}
	dir := t.TempDir()

	theirs := filepath.Join(dir, "theirs.vhdx")
	formattest.RunCmd(t, "qemu-img", "create", "-q", "-f", "vhdx", "-o", "block_size=256M", theirs, fmt.Sprint(size))
	args := []string{"-f", "vhdx"}
	for i, b := range blocks {
		args = append(args, "-c", fmt.Sprintf("write -P 0x%02x %d 64k", 0x10+i, b*bs+bs/2))
	}
	formattest.RunCmd(t, "qemu-io", append(args, theirs)...)
	d := formattest.OpenImage(t, theirs, "vhdx")
	buf := make([]byte, 64<<10)
	for i, b := range blocks {
		if err := d.Pread(buf, b*bs+bs/2); err != nil {
			t.Fatal(err)
		}
		for _, c := range buf {
			if c != byte(0x10+i) {
				t.Fatalf("block %d reads %#x, want %#x", b, c, 0x10+i)
			}
		}
	}
	var dataBlocks []int64
	for _, s := range ourMap(t, d) {
		for off := s.Off; s.Data && off < s.Off+s.Len; off += bs {
			dataBlocks = append(dataBlocks, off/bs)
		}
	}
	if fmt.Sprint(dataBlocks) != fmt.Sprint(blocks) {
		t.Fatalf("data blocks %v, qemu-io wrote %v", dataBlocks, blocks)
	}

	ours := filepath.Join(dir, "ours.vhdx")
	if err := image.Create(ours, "vhdx", image.CreateOptions{Size: size, Options: map[string]string{"block_size": "256M"}}); err != nil {
		t.Fatal(err)
	}
	w, err := image.Open(ours, image.Options{Format: "vhdx"})
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range blocks {
		for j := range buf {
			buf[j] = byte(0x20 + i)
		}
		if err := w.Pwrite(buf, b*bs+bs/2, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	args = []string{"-f", "vhdx"}
	for i, b := range blocks {
		args = append(args, "-c", fmt.Sprintf("read -P 0x%02x %d 64k", 0x20+i, b*bs+bs/2),
			"-c", fmt.Sprintf("read -P 0 %d 64k", b*bs))
	}
	formattest.RunCmd(t, "qemu-io", append(args, ours)...) // fails on a pattern mismatch
	formattest.RunCmd(t, "qemu-img", "check", "-f", "vhdx", ours)
}

// TestLogicalSector4K: an image with 4 KiB logical sectors (chunk ratio
// 32768 with 1 MiB blocks; Hyper-V makes them, qemu refuses them) written
// by us reads back after reopen, with the sector size reported.
func TestLogicalSector4K(t *testing.T) {
	name := filepath.Join(t.TempDir(), "4k.vhdx")
	p := CreateParams{Size: 64 << 20, Subformat: "dynamic", BlockSize: 1 << 20, LogSize: mib, logicalSector: 4096}
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	ws, fileSize := layout(p)
	for _, w := range ws {
		if _, err := f.WriteAt(w.data, w.off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(fileSize); err != nil {
		t.Fatal(err)
	}
	f.Close()
	d, err := image.Open(name, image.Options{Format: "vhdx"})
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Repeat([]byte{0x4b}, 8192)
	if err := d.Pwrite(want, 40<<20+4096, 0); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	r := formattest.OpenImage(t, name, "")
	got := make([]byte, 3*4096)
	if err := r.Pread(got, 40<<20); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[4096:], want) || !bytes.Equal(got[:4096], make([]byte, 4096)) {
		t.Fatal("4 KiB-sector image reads back wrong")
	}
	info, err := r.Info()
	if err != nil {
		t.Fatal(err)
	}
	if s := info.Specific.(*Specific); s.LogicalSectorSize != 4096 {
		t.Fatalf("logical sector size %d", s.LogicalSectorSize)
	}
}

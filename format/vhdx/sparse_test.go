package vhdx

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/internal/formattest"
	"github.com/thinblk/thinblk/internal/testutil"
)

// TestSparseLargeImage: an 8 GiB dynamic image with a few blocks of data
// maps in a handful of extents, and thinblk convert to raw moves only the
// data (the output stays sparse and the run is quick).
func TestSparseLargeImage(t *testing.T) {
	testutil.NeedTool(t, "qemu-img")
	dir := t.TempDir()
	name := filepath.Join(dir, "big.vhdx")
	const size = 8 << 30
	if err := image.Create(name, "vhdx", image.CreateOptions{Size: size}); err != nil {
		t.Fatal(err)
	}
	d, err := image.Open(name, image.Options{Format: "vhdx"})
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i)
	}
	for _, off := range []int64{0, 3 << 30, size - 1<<20} {
		if err := d.Pwrite(data, off, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	spans := ourMap(t, d)
	d.Close()
	if len(spans) != 5 {
		t.Fatalf("map of 3 data runs in %d spans: %v", len(spans), spans)
	}
	bin := testutil.Thinblk(t)
	out := filepath.Join(dir, "big.raw")
	start := time.Now()
	formattest.RunCmd(t, bin, "convert", "-O", "raw", name, out)
	took := time.Since(start)
	var info struct {
		VirtualSize int64 `json:"virtual-size"`
		ActualSize  int64 `json:"actual-size"`
	}
	if err := json.Unmarshal(formattest.RunCmd(t, "qemu-img", "info", "-f", "raw", "--output=json", out), &info); err != nil {
		t.Fatal(err)
	}
	t.Logf("convert of 8 GiB with 3 MiB of data: %v, output uses %d bytes", took, info.ActualSize)
	if info.VirtualSize != size || info.ActualSize > 64<<20 {
		t.Fatalf("output of %d bytes uses %d bytes on disk", info.VirtualSize, info.ActualSize)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := make([]byte, len(data))
	for _, off := range []int64{0, 3 << 30, size - 1<<20, 1 << 30} {
		if _, err := f.ReadAt(got, off); err != nil {
			t.Fatal(err)
		}
		want := data
		if off == 1<<30 {
			want = make([]byte, len(data))
		}
		if i := firstDiff(got, want); i >= 0 {
			t.Fatalf("converted raw differs at %d", off+int64(i))
		}
	}
}

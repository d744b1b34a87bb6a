package vpc

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/thinblk/thinblk/internal/formattest"
	"github.com/thinblk/thinblk/internal/testutil"
)

// TestSparseLargeImage: an 8 GiB dynamic VHD made by qemu-img with a few
// MiB of data maps in a handful of extents (as qemu-img map says) and
// converts to a sparse raw file quickly.
func TestSparseLargeImage(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	dir := t.TempDir()
	name := filepath.Join(dir, "big.vhd")
	formattest.RunCmd(t, "qemu-img", "create", "-q", "-f", "vpc", "-o", "force_size=on", name, "8G")
	formattest.RunCmd(t, "qemu-io", "-f", "vpc", "-c", "write -P 0x41 0 1M", "-c", "write -P 0x42 3G 1M", "-c", "write -P 0x43 8191M 1M", name)
	d := formattest.OpenImage(t, name, "vpc")
	got, want := ourMap(t, d), qemuMap(t, name, "vpc")
	if !equalSpans(got, want) || len(got) != 5 {
		t.Fatalf("map:\n ours %v\n qemu %v", got, want)
	}
	bin := testutil.Thinblk(t)
	out := filepath.Join(dir, "big.raw")
	start := time.Now()
	formattest.RunCmd(t, bin, "convert", "-f", "vpc", "-O", "raw", name, out)
	var info struct {
		VirtualSize int64 `json:"virtual-size"`
		ActualSize  int64 `json:"actual-size"`
	}
	if err := json.Unmarshal(formattest.RunCmd(t, "qemu-img", "info", "-f", "raw", "--output=json", out), &info); err != nil {
		t.Fatal(err)
	}
	t.Logf("convert of 8 GiB with 3 MiB of data: %v, output uses %d bytes", time.Since(start), info.ActualSize)
	if info.VirtualSize != 8<<30 || info.ActualSize > 64<<20 {
		t.Fatalf("output of %d bytes uses %d bytes on disk", info.VirtualSize, info.ActualSize)
	}
}

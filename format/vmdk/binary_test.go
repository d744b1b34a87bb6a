package vmdk

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/internal/formattest"
	"github.com/thinblk/thinblk/internal/testutil"
)

// TestThinblkBinary: for each subformat made by qemu-img (and a delta disk
// over a parent), `thinblk convert -O raw` gives content qemu-img compare
// calls identical, and `thinblk map --output=json` reports the ranges
// qemu-img map reports (at the grain; flat extents see note in
// compareWithQemu).
func TestThinblkBinary(t *testing.T) {
	tb := testutil.Thinblk(t)
	for _, sub := range []string{"monolithicSparse", "streamOptimized", "monolithicFlat", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat", "delta"} {
		t.Run(sub, func(t *testing.T) {
			dir := t.TempDir()
			name := filepath.Join(dir, "d.vmdk")
			switch sub {
			case "streamOptimized":
				src := filepath.Join(dir, "src.qcow2")
				formattest.QemuImg(t, "create", "-f", "qcow2", src, "4M")
				formattest.QemuIO(t, "qcow2", src, pattern...)
				formattest.QemuImg(t, "convert", "-f", "qcow2", "-O", "vmdk", "-o", "subformat=streamOptimized", src, name)
			case "delta":
				base := filepath.Join(dir, "base.vmdk")
				formattest.QemuImg(t, "create", "-f", "vmdk", base, "4M")
				formattest.QemuIO(t, "vmdk", base, "write -P 0x41 0 1M", "write -P 0x42 3M 1M")
				formattest.QemuImg(t, "create", "-f", "vmdk", "-b", "base.vmdk", "-F", "vmdk", name)
				formattest.QemuIO(t, "vmdk", name, pattern...)
			default:
				formattest.QemuImg(t, "create", "-f", "vmdk", "-o", "subformat="+sub, name, "4M")
				formattest.QemuIO(t, "vmdk", name, pattern...)
			}
			raw := filepath.Join(dir, "out.raw")
			testutil.MustRun(t, tb, "convert", "-O", "raw", name, raw)
			formattest.QemuImg(t, "compare", "-f", "vmdk", "-F", "raw", name, raw)

			var ours []formattest.MapRun
			out := testutil.MustRun(t, tb, "map", "--output=json", name)
			if err := json.Unmarshal([]byte(out), &ours); err != nil {
				t.Fatalf("thinblk map: %v\n%s", err, out)
			}
			got := formattest.Classes(t, ours, 4<<20, 64<<10)
			want := formattest.QemuMap(t, name, "vmdk", 4<<20, 64<<10)
			if strings.Contains(sub, "Flat") {
				for i := range got {
					if want[i] == "data@0" && strings.Contains(got[i], "zero@0") && !strings.Contains(got[i], "hole") {
						got[i] = want[i]
					}
				}
			}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Fatalf("thinblk map differs from qemu-img map:\n ours: %v\nqemu: %v", got, want)
			}
		})
	}
}

// TestTwoGbExtents: qemu-img's split subformats over more than one 2 GiB
// extent, with data across the extent boundary, convert to raw identical
// to the source and map like qemu-img (the sizes stay sparse on disk).
func TestTwoGbExtents(t *testing.T) {
	tb := testutil.Thinblk(t)
	const size = 2<<30 + 1<<20
	for _, sub := range []string{"twoGbMaxExtentSparse", "twoGbMaxExtentFlat"} {
		t.Run(sub, func(t *testing.T) {
			dir := t.TempDir()
			name := filepath.Join(dir, "big.vmdk")
			formattest.QemuImg(t, "create", "-f", "vmdk", "-o", "subformat="+sub, name, "2049M")
			formattest.QemuIO(t, "vmdk", name, "write -P 0x71 2047M 2M", "write -P 0x72 0 64k", "write -P 0x73 2048M 100k")
			raw := filepath.Join(dir, "out.raw")
			testutil.MustRun(t, tb, "convert", "-O", "raw", name, raw)
			formattest.QemuImg(t, "compare", "-f", "vmdk", "-F", "raw", name, raw)
			var ours []formattest.MapRun
			out := testutil.MustRun(t, tb, "map", "--output=json", name)
			if err := json.Unmarshal([]byte(out), &ours); err != nil {
				t.Fatalf("thinblk map: %v\n%s", err, out)
			}
			got := formattest.Classes(t, ours, size, 1<<20)
			want := formattest.QemuMap(t, name, "vmdk", size, 1<<20)
			if strings.Contains(sub, "Flat") {
				for i := range got {
					if want[i] == "data@0" && strings.Contains(got[i], "zero@0") && !strings.Contains(got[i], "hole") {
						got[i] = want[i]
					}
				}
			}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Fatalf("thinblk map differs from qemu-img map at 1 MiB units")
			}
			info := testutil.MustRun(t, tb, "info", name)
			if !strings.Contains(info, "extent [1]") {
				t.Fatalf("thinblk info shows one extent:\n%s", info)
			}
		})
	}
}

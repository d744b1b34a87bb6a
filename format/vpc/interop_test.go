package vpc

import (
	"fmt"
	"math/rand"
	"path/filepath"
	"testing"

	"github.com/thinblk/thinblk/internal/formattest"
	"github.com/thinblk/thinblk/internal/testutil"
)

// qemuIOPattern fills an image with qemu-io: data, holes and written zeros,
// at offsets chosen by the seed (some unaligned to the 2 MiB block).
func qemuIOPattern(t *testing.T, name, format string, size int64, rng *rand.Rand) {
	t.Helper()
	testutil.NeedTool(t, "qemu-io")
	args := []string{"-f", format}
	for i := 0; i < 12; i++ {
		n := int64(512 * (1 + rng.Intn(300)))
		off := rng.Int63n((size-n)/512) * 512
		if rng.Intn(4) == 0 {
			args = append(args, "-c", fmt.Sprintf("write -z %d %d", off, n))
		} else {
			args = append(args, "-c", fmt.Sprintf("write -P 0x%02x %d %d", 1+rng.Intn(254), off, n))
		}
	}
	args = append(args, "-c", fmt.Sprintf("write -P 0x5a %d 4096", size-4096), name)
	formattest.RunCmd(t, "qemu-io", args...)
}

// TestQemuImages reads images qemu-img made and qemu-io filled, and
// compares content with qemu-img convert and allocation with qemu-img map.
func TestQemuImages(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	seed := testutil.Seed(t)
	for _, tc := range []struct {
		name, opts string
		size       int64
	}{
		{"dynamic", "subformat=dynamic", 21 << 20},
		{"dynamic-odd", "subformat=dynamic", 7<<20 + 3*512},
		{"fixed", "subformat=fixed", 9 << 20},
		{"fixed-force", "subformat=fixed,force_size=on", 8 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(seed))
			name := filepath.Join(t.TempDir(), "img.vhd")
			formattest.RunCmd(t, "qemu-img", "create", "-q", "-f", "vpc", "-o", tc.opts, name, fmt.Sprint(tc.size))
			qemuIOPattern(t, name, "vpc", tc.size, rng)
			want := formattest.QemuRaw(t, name, "vpc")
			d := formattest.OpenImage(t, name, "vpc")
			if d.Size() != int64(len(want)) {
				t.Fatalf("size %d, qemu-img says %d", d.Size(), len(want))
			}
			if i := firstDiff(formattest.ReadAll(t, d), want); i >= 0 {
				t.Fatalf("content differs from qemu-img convert at byte %d", i)
			}
			// qemu-img reports a fixed image as all data; ours reports the
			// file's holes, which qemu-img map shows on the file as raw.
			mapFormat := "vpc"
			if tc.opts != "subformat=dynamic" {
				mapFormat = "raw"
			}
			if got, want := ourMap(t, d), truncSpans(qemuMap(t, name, mapFormat), d.Size()); !equalSpans(got, want) {
				t.Fatalf("map differs:\n ours %v\n qemu %v", got, want)
			}
			// The same through the CLI: thinblk convert -O raw is identical
			// for qemu-img compare, and thinblk map agrees with qemu-img map.
			bin := testutil.Thinblk(t)
			out := filepath.Join(t.TempDir(), "out.raw")
			formattest.RunCmd(t, bin, "convert", "-f", "vpc", "-O", "raw", name, out)
			formattest.RunCmd(t, "qemu-img", "compare", "-f", "vpc", "-F", "raw", name, out)
			if tc.opts == "subformat=dynamic" {
				if got, want := cliMap(t, bin, name), qemuMap(t, name, "vpc"); !equalSpans(got, want) {
					t.Fatalf("thinblk map differs:\n ours %v\n qemu %v", got, want)
				}
			}
		})
	}
}

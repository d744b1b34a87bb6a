package tool

import (
	"bytes"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	_ "github.com/thinblk/thinblk/format/raw"
	_ "github.com/thinblk/thinblk/format/vhdx"
	_ "github.com/thinblk/thinblk/format/vpc"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/internal/testutil"
)

// TestConvertSparseBlocksStaySparse converts a 1 GiB raw disk holding a few
// scattered 4 KiB granules to VHDX (8 MiB blocks) and VHD (2 MiB blocks).
// Their blocks keep unwritten parts as holes, so the output must stay about
// as small as the data: convert used to write every touched block whole,
// zeros included (1.6 GB of VHDX for 400 KiB of data in a 2 GiB disk;
// qemu-img's output is 2.4 MB).
func TestConvertSparseBlocksStaySparse(t *testing.T) {
	r := rand.New(rand.NewSource(testutil.Seed(t)))
	dir := t.TempDir()
	const size = 1 << 30
	src := filepath.Join(dir, "src.raw")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	want := map[int64][]byte{}
	for range 8 {
		off := r.Int63n(size/4096) * 4096
		p := bytes.Repeat([]byte{byte(1 + r.Intn(255))}, 4096)
		if _, err := f.WriteAt(p, off); err != nil {
			t.Fatal(err)
		}
		want[off] = p
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for _, fmtName := range []string{"vhdx", "vpc"} {
		out := filepath.Join(dir, "out."+fmtName)
		if err := Convert(io.Discard, io.Discard, []string{src}, out, ConvertOptions{SrcFormat: "raw", OutFormat: fmtName, SparseSize: -1}); err != nil {
			t.Fatalf("%s: %v", fmtName, err)
		}
		// Metadata (VHDX: 4 MiB of headers, log and tables; VHD: the BAT)
		// plus the data and block bitmaps: well under 8 MiB. Whole blocks
		// would be 16 MiB (VHD) to 64 MiB (VHDX).
		if got := testutil.HostBytes(t, out); got > 8<<20 {
			t.Errorf("%s: the output allocates %d bytes for %d KiB of data (blocks written whole?)", fmtName, got, 4*len(want))
		}
		d, err := image.Open(out, image.Options{Format: fmtName, ReadOnly: true})
		if err != nil {
			t.Fatalf("%s: %v", fmtName, err)
		}
		for off, p := range want {
			got := make([]byte, len(p))
			if err := d.Pread(got, off); err != nil {
				t.Fatalf("%s: %v", fmtName, err)
			}
			if !bytes.Equal(got, p) {
				t.Errorf("%s: the granule at %d differs", fmtName, off)
			}
		}
		d.Close()
	}
}

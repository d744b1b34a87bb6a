package qcow2

import (
	"errors"
	"math/rand"
	"path/filepath"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/internal/testutil"
)

// TestResize grows images past their L1 table, grows an overlay over a
// longer backing file, and shrinks with and without data past the new end;
// qemu-img check stays clean and qemu-img reads what we expect.
func TestResize(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	for _, opts := range []string{"cluster_size=512", "cluster_size=65536", "cluster_size=16384,extended_l2=on", "cluster_size=4096,compat=0.10"} {
		t.Run(opts, func(t *testing.T) {
			dir := t.TempDir()
			base := filepath.Join(dir, "base.raw")
			name := filepath.Join(dir, "r.qcow2")
			run(t, "qemu-img", "create", "-q", "-f", "raw", base, "8M")
			run(t, "qemu-io", "-f", "raw", "-c", "write -P 0xbb 0 8M", base)
			run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-o", opts, "-b", "base.raw", "-F", "raw", name, "1000k")
			d := openPath(t, name, false)
			img, ok := block.As[*Image](d)
			if !ok {
				t.Fatal("not a qcow2 image")
			}
			r := rand.New(rand.NewSource(9))
			want := readAll(t, d)
			p := randBytes(r, 3000)
			if err := d.Pwrite(p, 1000*1024-3000, 0); err != nil {
				t.Fatal(err)
			}
			copy(want[len(want)-3000:], p)
			// Grow: the new area reads as zeros although the backing file
			// is longer.
			if err := img.Resize(6<<20, false, false); err != nil {
				t.Fatal(err)
			}
			want = append(want, make([]byte, 6<<20-len(want))...)
			mustEqual(t, readAll(t, d), want, "after grow")
			p = randBytes(r, 100000)
			if err := d.Pwrite(p, 5<<20, 0); err != nil {
				t.Fatal(err)
			}
			copy(want[5<<20:], p)
			// Shrinking needs the flag, and refuses to cut data unless told.
			if err := img.Resize(4<<20, false, false); !errors.Is(err, block.ErrInvalid) {
				t.Fatalf("shrink without flag: %v", err)
			}
			if err := img.Resize(4<<20, true, false); !errors.Is(err, block.ErrInvalid) {
				t.Fatalf("shrink over data: %v", err)
			}
			if err := img.Resize(4<<20+512, true, true); err != nil {
				t.Fatal(err)
			}
			want = want[:4<<20+512]
			mustEqual(t, readAll(t, d), want, "after shrink")
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			mustBeClean(t, name)
			mustEqual(t, qemuRaw(t, name), want, "qemu after shrink")
		})
	}
}

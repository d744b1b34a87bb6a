package qcow2

import (
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/internal/testutil"
)

// TestSnapshotCOW writes, zeroes and discards in an image with internal
// snapshots: the snapshots' content must stay as it was (qemu-img convert
// -l), the active image must read what was written, and qemu-img check
// must stay clean.
func TestSnapshotCOW(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	for _, opts := range []string{"cluster_size=65536", "cluster_size=4096,refcount_bits=64", "extended_l2=on", "compat=0.10"} {
		t.Run(opts, func(t *testing.T) {
			dir := t.TempDir()
			name := filepath.Join(dir, "s.qcow2")
			run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-o", opts, name, "2M")
			run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 1M", "-c", "write -P 0x12 1500k 100k", name)
			run(t, "qemu-img", "snapshot", "-c", "s1", name)
			run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x21 512k 1M", name)
			run(t, "qemu-img", "snapshot", "-c", "s2", name)
			snap := map[string][]byte{}
			for _, s := range []string{"s1", "s2"} {
				out := filepath.Join(dir, s+".raw")
				run(t, "qemu-img", "convert", "-l", "snapshot.name="+s, "-O", "raw", name, out)
				snap[s], _ = os.ReadFile(out)
			}
			d := openPath(t, name, false)
			if n := len(d.(*Image).Snapshots()); n != 2 {
				t.Fatalf("%d snapshots, want 2", n)
			}
			want := readAll(t, d)
			r := rand.New(rand.NewSource(5))
			for range 40 {
				off := r.Int63n(d.Size())
				n := min(1+r.Int63n(100000), d.Size()-off)
				switch r.Intn(4) {
				case 0, 1:
					p := randBytes(r, int(n))
					if err := d.Pwrite(p, off, 0); err != nil {
						t.Fatal(err)
					}
					copy(want[off:], p)
				case 2:
					if err := d.WriteZeroes(off, n, block.MayUnmap); err != nil {
						t.Fatal(err)
					}
					clear(want[off : off+n])
				case 3:
					if err := d.Discard(off, n, 0); err != nil {
						t.Fatal(err)
					}
					copy(want[off:], readRange(t, d, off, n))
				}
			}
			mustEqual(t, readAll(t, d), want, "active")
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			mustBeClean(t, name)
			mustEqual(t, qemuRaw(t, name), want, "active via qemu")
			for _, s := range []string{"s1", "s2"} {
				out := filepath.Join(dir, s+"-after.raw")
				run(t, "qemu-img", "convert", "-l", "snapshot.name="+s, "-O", "raw", name, out)
				got, _ := os.ReadFile(out)
				mustEqual(t, got, snap[s], "snapshot "+s)
			}
		})
	}
}

func readRange(t testing.TB, d block.Driver, off, n int64) []byte {
	t.Helper()
	p := make([]byte, n)
	if err := d.Pread(p, off); err != nil {
		t.Fatal(err)
	}
	return p
}

//go:build linux

package file

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/block/blocktest"
	"github.com/thinblk/thinblk/internal/testutil"
)

// mountScratch makes a filesystem of the given type in a sparse image,
// mounts it through a loop device and returns the mount point; everything
// is undone when the test ends. It skips when the kernel refuses the mount.
func mountScratch(t *testing.T, fstype string, size int64, mkfs ...string) string {
	t.Helper()
	testutil.NeedRoot(t)
	testutil.NeedTool(t, mkfs[0], "mount", "umount")
	dir := t.TempDir()
	img := filepath.Join(dir, fstype+".img")
	if err := Create(img, size, PreallocOff); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(mkfs[0], append(mkfs[1:], img)...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", mkfs[0], err, out)
	}
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", fstype, "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("mount %s: %v: %s", fstype, err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	return mnt
}

// TestOtherFilesystems runs the conformance suite and the qemu-img map
// comparison on XFS, and on ext2 (which has PUNCH_HOLE but no ZERO_RANGE,
// so the remembered refusal and its fallback run against a real kernel).
func TestOtherFilesystems(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts filesystems")
	}
	for _, fs := range []struct {
		name string
		size int64
		mkfs []string
	}{
		{"xfs", 320 << 20, []string{"mkfs.xfs", "-q", "-f"}},
		{"ext2", 64 << 20, []string{"mkfs.ext2", "-q", "-F"}},
	} {
		t.Run(fs.name, func(t *testing.T) {
			mnt := mountScratch(t, fs.name, fs.size, fs.mkfs...)
			for _, direct := range []bool{false, true} {
				o := Options{Discard: true, Direct: direct}
				open := func(t *testing.T, size int64) block.Driver {
					name, err := os.CreateTemp(mnt, "disk-")
					if err != nil {
						t.Fatal(err)
					}
					name.Close()
					if err := Create(name.Name(), size, PreallocOff); err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { os.Remove(name.Name()) })
					n, err := Open(name.Name(), o)
					if err != nil {
						t.Fatal(err)
					}
					return n
				}
				reopen := func(d block.Driver) (block.Driver, error) {
					name := d.(*Node).Name()
					if err := d.Close(); err != nil {
						return nil, err
					}
					return Open(name, o)
				}
				sub := "buffered"
				if direct {
					sub = "direct"
				}
				t.Run(sub, func(t *testing.T) {
					blocktest.Run(t, open, blocktest.Options{Size: 2<<20 + 4096, Ops: 300, Reopen: reopen})
				})
			}
			t.Run("qemu-map", func(t *testing.T) {
				testutil.NeedTool(t, "qemu-img")
				name := filepath.Join(mnt, "map.raw")
				random := pattern(1<<20, 5)
				build(t, name, 6<<20+1000, func(f *os.File) {
					_, err := f.WriteAt(random, 0)
					must(t, err)
					_, err = f.WriteAt(random[:70000], 3<<20+1234)
					must(t, err)
					_, err = f.WriteAt(make([]byte, 100000), 5<<20)
					must(t, err)
					must(t, f.Sync())
					must(t, punchHole(f, 64<<10, 128<<10))
					if err := allocate(f, 2<<20, 512<<10); err != nil && !isNotSupported(err) {
						t.Fatal(err)
					}
				})
				compareWithQemu(t, name)
			})
		})
	}
}

package qcow2

import (
	"errors"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/internal/testutil"
)

// damage opens name, lets f break it under the metadata lock, and writes
// the damage back.
func damage(t *testing.T, name string, f func(img *Image)) {
	t.Helper()
	d := openPath(t, name, false)
	img, ok := block.As[*Image](d)
	if !ok {
		t.Fatal("not qcow2")
	}
	img.mu.Lock()
	f(img)
	if err := img.flushLocked(); err != nil {
		t.Fatal(err)
	}
	img.mu.Unlock()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}

func qemuCheckCode(name string) int {
	err := exec.Command("qemu-img", "check", name).Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestCheckRepair makes leaks and corruptions, checks that Check finds
// what qemu-img check finds, and that repairs leave an image qemu-img
// check calls clean with the data intact.
func TestCheckRepair(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	for _, opts := range []string{"cluster_size=65536", "cluster_size=512,refcount_bits=1", "cluster_size=4096,refcount_bits=64,extended_l2=on"} {
		t.Run(opts, func(t *testing.T) {
			name := filepath.Join(t.TempDir(), "c.qcow2")
			if opts == "cluster_size=4096,refcount_bits=64,extended_l2=on" {
				opts = "cluster_size=16384,refcount_bits=64,extended_l2=on"
			}
			run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-o", opts, name, "4M")
			run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 1M", "-c", "write -P 0x22 2M 300k", name)
			want := qemuRaw(t, name)

			// Leaks: clusters with a refcount and no reference.
			damage(t, name, func(img *Image) {
				off, err := img.allocClustersLocked(3)
				if err != nil {
					t.Fatal(err)
				}
				// The file must cover them: qemu-img check looks only there.
				if err := img.file.Pwrite(make([]byte, 3*img.clusterSize), off, 0); err != nil {
					t.Fatal(err)
				}
			})
			if c := qemuCheckCode(name); c != 3 {
				t.Fatalf("qemu-img check exit %d, want 3 (leaks)", c)
			}
			d := openPath(t, name, false)
			img, _ := block.As[*Image](d)
			res, err := img.Check(RepairNone)
			if err != nil || res.Leaks != 3 || res.Corruptions != 0 {
				t.Fatalf("check: %+v %v", res, err)
			}
			if res, err = img.Check(RepairLeaks); err != nil || res.LeaksFixed != 3 {
				t.Fatalf("repair leaks: %+v %v", res, err)
			}
			d.Close()
			mustBeClean(t, name)

			// Corruption: a data cluster whose refcount is 0.
			damage(t, name, func(img *Image) {
				ms, err := img.lookupLocked(0, 1)
				if err != nil || ms[0].host == 0 {
					t.Fatalf("lookup: %v %+v", err, ms)
				}
				if err := img.setRefcountLocked(ms[0].host>>img.clusterBits, 0, 0, 0); err != nil {
					t.Fatal(err)
				}
			})
			if c := qemuCheckCode(name); c != 2 {
				t.Fatalf("qemu-img check exit %d, want 2 (corruption)", c)
			}
			d = openPath(t, name, false)
			img, _ = block.As[*Image](d)
			res, err = img.Check(RepairNone)
			if err != nil || res.Corruptions == 0 {
				t.Fatalf("check: %+v %v", res, err)
			}
			if res, err = img.Check(RepairAll); err != nil || res.CorruptionsFixed == 0 {
				t.Fatalf("repair all: %+v %v", res, err)
			}
			if res, err = img.Check(RepairNone); err != nil || res.Corruptions != 0 || res.Leaks != 0 {
				t.Fatalf("after repair: %+v %v", res, err)
			}
			d.Close()
			mustBeClean(t, name)
			mustEqual(t, qemuRaw(t, name), want, "content after repair")
		})
	}
}

// TestMetadataOverlapRefused points a guest cluster at the L1 table: reads
// and writes of it fail with ErrCorrupt instead of overwriting metadata.
func TestMetadataOverlapRefused(t *testing.T) {
	img := newMemImage(t, 1<<20, map[string]string{"cluster_size": "4096"}, nil)
	if err := img.Pwrite(make([]byte, 4096), 0, 0); err != nil {
		t.Fatal(err)
	}
	img.mu.Lock()
	err := img.setMappingLocked(1, mapping{host: int64(img.hdr.L1TableOffset), copied: true, alloc: 1})
	img.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	l1Before := append([]uint64(nil), img.l1...)
	if err := img.Pwrite(make([]byte, 4096), 4096, 0); !errors.Is(err, block.ErrCorrupt) {
		t.Fatalf("write over the L1 table: %v, want ErrCorrupt", err)
	}
	if err := img.Pread(make([]byte, 10), 4096); !errors.Is(err, block.ErrCorrupt) {
		t.Fatalf("read: %v, want ErrCorrupt", err)
	}
	for i := range l1Before {
		if img.l1[i] != l1Before[i] {
			t.Fatal("L1 table changed")
		}
	}
}

// TestKeepDirty opens a dirty image (left by a killed qemu-io with lazy
// refcounts) with keep-dirty: writes are refused until Check(RepairAll)
// rebuilds the refcounts and clears the dirty bit.
func TestKeepDirty(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	name := filepath.Join(t.TempDir(), "d.qcow2")
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on", name, "3M")
	exec9(t, name)
	d, err := image.Open(name, image.Options{Options: map[string]string{OptionKeepDirty: "on"}})
	if err != nil {
		t.Fatal(err)
	}
	img, _ := block.As[*Image](d)
	if !img.DirtyFlag() {
		t.Fatal("image is not dirty")
	}
	if err := d.Pwrite([]byte{1}, 0, 0); !errors.Is(err, block.ErrCorrupt) {
		t.Fatalf("write to a dirty image: %v, want ErrCorrupt", err)
	}
	res, err := img.Check(RepairAll)
	if err != nil || res.Corruptions == 0 || res.CorruptionsFixed != res.Corruptions {
		t.Fatalf("repair: %+v %v", res, err)
	}
	if img.DirtyFlag() {
		t.Fatal("dirty bit still set after repair")
	}
	if err := d.Pwrite([]byte{1}, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	mustBeClean(t, name)
}

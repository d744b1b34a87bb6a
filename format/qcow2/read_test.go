package qcow2

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/thinblk/thinblk/internal/testutil"
)

// TestReadQemuImages reads images made by qemu-img/qemu-io in many shapes
// and compares every byte with qemu-img convert -O raw.
func TestReadQemuImages(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	dir := t.TempDir()
	src := filepath.Join(dir, "src.raw")
	// A source with data, zeros and holes, unaligned pieces.
	run(t, "qemu-img", "create", "-q", "-f", "raw", src, "3M")
	run(t, "qemu-io", "-f", "raw", "-c", "write -P 0x11 0 300k", "-c", "write -P 0x22 1000k 5k",
		"-c", "write -P 0 1500k 64k", "-c", "write -P 0x33 2047k 3k", "-c", "write -P 0x44 3068k 4k", src)
	cases := []struct {
		name, opts string
		compress   bool
	}{
		{"default", "", false},
		{"v2", "compat=0.10", false},
		{"c512", "cluster_size=512", false},
		{"c4k-rb1", "cluster_size=4096,refcount_bits=1", false},
		{"c2M-rb64", "cluster_size=2M,refcount_bits=64", false},
		{"extl2", "extended_l2=on", false},
		{"extl2-32k", "extended_l2=on,cluster_size=32k", false},
		{"zlib", "", true},
		{"zstd", "compression_type=zstd", true},
		{"zlib-4k", "cluster_size=4k", true},
		{"prealloc-meta", "preallocation=metadata", false},
		{"prealloc-falloc", "preallocation=falloc", false},
		{"lazy", "lazy_refcounts=on", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img := filepath.Join(dir, c.name+".qcow2")
			args := []string{"convert", "-f", "raw", "-O", "qcow2"}
			if c.opts != "" {
				args = append(args, "-o", c.opts)
			}
			if c.compress {
				args = append(args, "-c")
			}
			run(t, "qemu-img", append(args, src, img)...)
			want := qemuRaw(t, img)
			d := openPath(t, img, true)
			defer d.Close()
			mustEqual(t, readAll(t, d), want, "content")
		})
	}
	t.Run("chain", func(t *testing.T) {
		base := filepath.Join(dir, "base.qcow2")
		mid := filepath.Join(dir, "mid.qcow2")
		top := filepath.Join(dir, "top.qcow2")
		run(t, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", src, base)
		run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", mid)
		run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x55 100k 10k", "-c", "write -z 1000k 64k", mid)
		run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-o", "compat=0.10", "-b", "mid.qcow2", "-F", "qcow2", top, "4M")
		run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x66 2040k 20k", "-c", "write -P 0x77 3500k 4k", top)
		want := qemuRaw(t, top)
		d := openPath(t, top, true)
		defer d.Close()
		mustEqual(t, readAll(t, d), want, "content")
	})
	t.Run("snapshot", func(t *testing.T) {
		img := filepath.Join(dir, "snap.qcow2")
		run(t, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", src, img)
		run(t, "qemu-img", "snapshot", "-c", "s1", img)
		run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x99 0 100k", img)
		want := qemuRaw(t, img)
		d := openPath(t, img, true)
		defer d.Close()
		mustEqual(t, readAll(t, d), want, "content")
	})
	t.Run("dirty", func(t *testing.T) {
		img := filepath.Join(dir, "dirty.qcow2")
		run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on", img, "3M")
		// sigraise 9 kills qemu-io with the dirty bit set.
		_ = fmt.Sprint()
		exec9(t, img)
		want := qemuRaw(t, img)
		d := openPath(t, img, false)
		mustEqual(t, readAll(t, d), want, "content")
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		mustBeClean(t, img)
	})
}

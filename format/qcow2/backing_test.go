package qcow2

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/internal/testutil"
)

func TestSetBackingFile(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	for _, opts := range []string{"compat=1.1", "compat=0.10"} {
		t.Run(opts, func(t *testing.T) {
			dir := t.TempDir()
			p := func(n string) string { return filepath.Join(dir, n) }
			run(t, "qemu-img", "create", "-q", "-f", "qcow2", p("a.qcow2"), "4M")
			run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 4M", p("a.qcow2"))
			run(t, "qemu-img", "create", "-q", "-f", "raw", p("b.raw"), "4M")
			run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-o", opts, "-b", "a.qcow2", "-F", "qcow2", p("top.qcow2"))
			run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x22 1M 64k", p("top.qcow2"))

			d := openPath(t, p("top.qcow2"), false)
			img := d.(*Image)
			long := strings.Repeat("x", maxBackingName+1)
			if err := img.SetBackingFile(long, "raw"); !errors.Is(err, block.ErrInvalid) {
				t.Fatalf("name of %d bytes: %v, want ErrInvalid", len(long), err)
			}
			if name, format := img.BackingFile(); name != "a.qcow2" || format != "qcow2" {
				t.Fatalf("after a refused change the header says %q (%q)", name, format)
			}
			if err := img.SetBackingFile("b.raw", "raw"); err != nil {
				t.Fatal(err)
			}
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			mustBeClean(t, p("top.qcow2"))
			info := run(t, "qemu-img", "info", p("top.qcow2"))
			if !strings.Contains(info, "backing file: b.raw") || !strings.Contains(info, "backing file format: raw") {
				t.Fatalf("qemu-img info after SetBackingFile:\n%s", info)
			}
			// Reads now go to b.raw (zeros) except top's own cluster.
			got := qemuRaw(t, p("top.qcow2"))
			want := make([]byte, 4<<20)
			copy(want[1<<20:], bytes.Repeat([]byte{0x22}, 64<<10))
			mustEqual(t, got, want, "top over b.raw")

			// Removing the backing file.
			d = openPath(t, p("top.qcow2"), false)
			if err := d.(*Image).SetBackingFile("", ""); err != nil {
				t.Fatal(err)
			}
			d.Close()
			mustBeClean(t, p("top.qcow2"))
			if info := run(t, "qemu-img", "info", p("top.qcow2")); strings.Contains(info, "backing file") {
				t.Fatalf("backing file still recorded:\n%s", info)
			}
		})
	}
}

func TestMakeEmpty(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	for _, opts := range []string{"cluster_size=65536", "extended_l2=on", "compat=0.10"} {
		t.Run(opts, func(t *testing.T) {
			dir := t.TempDir()
			p := func(n string) string { return filepath.Join(dir, n) }
			run(t, "qemu-img", "create", "-q", "-f", "qcow2", p("base.qcow2"), "4M")
			run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 4M", p("base.qcow2"))
			top := p("top.qcow2")
			run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-o", opts, "-b", "base.qcow2", "-F", "qcow2", top)
			run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x22 0 1M", "-c", "write -z 2M 512k", "-c", "write -P 0x23 3M 4k", top)
			// A snapshot shares some clusters: they must keep their other
			// reference.
			run(t, "qemu-img", "snapshot", "-c", "s1", top)
			run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x24 512k 1M", top)
			s1 := p("s1.raw")
			run(t, "qemu-img", "convert", "-l", "snapshot.name=s1", "-O", "raw", top, s1)
			wantS1, _ := os.ReadFile(s1)

			d := openPath(t, top, false)
			if err := d.(*Image).MakeEmpty(); err != nil {
				t.Fatal(err)
			}
			for off := int64(0); off < d.Size(); {
				e, err := d.BlockStatus(off, d.Size()-off)
				if err != nil {
					t.Fatal(err)
				}
				if e.Status.Present() {
					t.Fatalf("after MakeEmpty %d+%d has status %v", off, e.Len, e.Status)
				}
				off += e.Len
			}
			mustEqual(t, readAll(t, d), bytes.Repeat([]byte{0x11}, 4<<20), "emptied top")
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			mustBeClean(t, top)
			for _, m := range qemuMap(t, top) {
				if m.Depth == 0 && m.Present {
					t.Fatalf("qemu-img map finds %+v in the emptied top", m)
				}
			}
			// The snapshot still reads what it did.
			run(t, "qemu-img", "snapshot", "-a", "s1", top)
			mustEqual(t, qemuRaw(t, top), wantS1, "snapshot s1 after MakeEmpty")
			mustBeClean(t, top)
		})
	}
}

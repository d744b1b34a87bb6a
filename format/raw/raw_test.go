package raw_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/block/blocktest"
	"github.com/thinblk/thinblk/format/raw"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/internal/testutil"
	"github.com/thinblk/thinblk/protocol/file"
	"github.com/thinblk/thinblk/protocol/mem"
)

func TestConformanceOverFile(t *testing.T) {
	o := file.Options{Discard: true, Growable: true}
	open := func(t *testing.T, size int64) block.Driver {
		name := filepath.Join(t.TempDir(), "disk.raw")
		if err := file.Create(name, size, file.PreallocOff); err != nil {
			t.Fatal(err)
		}
		f, err := file.Open(name, o)
		if err != nil {
			t.Fatal(err)
		}
		n, err := raw.Open(f, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	reopen := func(d block.Driver) (block.Driver, error) {
		name := d.(*raw.Node).Unwrap().(*file.Node).Name()
		if err := d.Close(); err != nil {
			return nil, err
		}
		f, err := file.Open(name, o)
		if err != nil {
			return nil, err
		}
		return raw.Open(f, 0, -1)
	}
	// The file is growable (as image.Open opens it): raw must still refuse
	// writes past its end, which the suite checks.
	blocktest.Run(t, open, blocktest.Options{Size: 4<<20 + 512, Concurrent: true, Reopen: reopen})
}

func TestConformanceWindowOverMem(t *testing.T) {
	const offset, tail = 3*mem.ChunkSize + 123, 77777
	open := func(t *testing.T, size int64) block.Driver {
		m := mem.New(offset + size + tail)
		n, err := raw.Open(m, offset, size)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	blocktest.Run(t, open, blocktest.Options{Size: 2 << 20, Concurrent: true})
}

func TestWindow(t *testing.T) {
	const size = 16 * mem.ChunkSize
	m := mem.New(size)
	outside := bytes.Repeat([]byte{0xee}, size)
	if err := m.Pwrite(outside, 0, 0); err != nil {
		t.Fatal(err)
	}
	const offset, length = 2 * mem.ChunkSize, 8 * mem.ChunkSize
	n, err := raw.Open(m, offset, length)
	if err != nil {
		t.Fatal(err)
	}
	if n.Size() != length {
		t.Fatalf("size %d", n.Size())
	}
	if err := n.WriteZeroes(0, length, block.MayUnmap); err != nil {
		t.Fatal(err)
	}
	if err := n.Pwrite([]byte("hello"), mem.ChunkSize, 0); err != nil {
		t.Fatal(err)
	}
	if err := n.Pwrite([]byte("x"), length, 0); !errors.Is(err, block.ErrOutOfRange) {
		t.Fatalf("write past window: %v", err)
	}
	got := make([]byte, size)
	if err := m.Pread(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:offset], outside[:offset]) || !bytes.Equal(got[offset+length:], outside[offset+length:]) {
		t.Fatal("bytes outside the window changed")
	}
	if string(got[offset+mem.ChunkSize:offset+mem.ChunkSize+5]) != "hello" {
		t.Fatal("write did not land at offset+off")
	}
	want := []block.Extent{
		{Off: 0, Len: mem.ChunkSize, Status: block.Zero, HostOffset: offset},
		{Off: mem.ChunkSize, Len: mem.ChunkSize, Status: block.Data | block.Allocated, HostOffset: offset + mem.ChunkSize},
		{Off: 2 * mem.ChunkSize, Len: 6 * mem.ChunkSize, Status: block.Zero, HostOffset: offset + 2*mem.ChunkSize},
	}
	for _, w := range want {
		e, err := n.BlockStatus(w.Off, length-w.Off)
		if err != nil {
			t.Fatal(err)
		}
		if e != w {
			t.Errorf("BlockStatus(%d) = %+v, want %+v", w.Off, e, w)
		}
	}
	info, err := n.Info()
	if err != nil {
		t.Fatal(err)
	}
	if info.Format != "raw" || info.VirtualSize != length || !info.UnallocatedReadsZero {
		t.Errorf("info %+v", info)
	}
	if err := n.Truncate(length * 2); !errors.Is(err, block.ErrNotSupported) {
		t.Errorf("truncate of a window: %v", err)
	}
	for _, bad := range [][2]int64{{-1, -1}, {size + 1, -1}, {0, size + 1}, {offset, size - offset + 1}, {0, -2}} {
		if _, err := raw.Open(m, bad[0], bad[1]); !errors.Is(err, block.ErrInvalid) {
			t.Errorf("Open(offset %d, size %d): %v", bad[0], bad[1], err)
		}
	}
}

func TestTruncateWhole(t *testing.T) {
	m := mem.New(1000)
	n, err := raw.Open(m, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Truncate(5000); err != nil {
		t.Fatal(err)
	}
	if n.Size() != 5000 || m.Size() != 5000 {
		t.Fatalf("sizes after truncate: raw %d, mem %d", n.Size(), m.Size())
	}
}

func TestRegistry(t *testing.T) {
	f, ok := image.Lookup("raw")
	if !ok || f.Open == nil || f.Create == nil || f.Probe != nil {
		t.Fatalf("raw registration: %+v ok=%v", f, ok)
	}
	dir := t.TempDir()
	name := filepath.Join(dir, "a.raw")
	if err := f.Create(name, image.CreateOptions{Size: 1 << 20, Options: map[string]string{"preallocation": "falloc"}}); err != nil {
		t.Fatal(err)
	}
	if got := testutil.HostBytes(t, name); got < 1<<20 {
		t.Errorf("falloc image has %d bytes allocated", got)
	}
	for _, tc := range []struct {
		o    image.CreateOptions
		want string
	}{
		{image.CreateOptions{Size: 10, Options: map[string]string{"cluster_size": "64k"}}, "cluster_size"},
		{image.CreateOptions{Size: 10, Options: map[string]string{"preallocation": "metadata"}}, "metadata"},
		{image.CreateOptions{Size: 10, Backing: "base.qcow2"}, "backing"},
		{image.CreateOptions{Size: -1}, "negative"},
	} {
		err := f.Create(filepath.Join(dir, "b.raw"), tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Create(%+v) = %v, want an error naming %q", tc.o, err, tc.want)
		}
	}

	fn, err := file.Open(name, file.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := f.Open(fn, image.FormatOpen{Name: name, Options: map[string]string{"offset": "4k", "size": "8192"}})
	if err != nil {
		t.Fatal(err)
	}
	if d.Size() != 8192 {
		t.Errorf("size with offset/size options: %d", d.Size())
	}
	d.Close()
	for _, opts := range []map[string]string{{"offset": "x"}, {"size": "-5"}, {"compat": "1.1"}, {"offset": "2M"}} {
		fn, err := file.Open(name, file.Options{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.Open(fn, image.FormatOpen{Name: name, Options: opts})
		fn.Close()
		if err == nil {
			t.Errorf("Open with %v succeeded", opts)
			continue
		}
		for k := range opts {
			if k != "offset" && !strings.Contains(err.Error(), k) {
				t.Errorf("Open with %v: %v does not name %q", opts, err, k)
			}
		}
	}
}

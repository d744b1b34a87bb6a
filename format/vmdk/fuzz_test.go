package vmdk

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/protocol/mem"
)

// tinySparse builds a monolithicSparse image of 8 one-sector grains:
// header, descriptor (sector 1), grain directory (sector 2), one grain
// table of 8 entries (sector 3), grains at sectors 4 and 5. Grain 0 and 3
// hold data, grain 2 is a zeroed grain, the rest are unallocated.
func tinySparse() []byte {
	b := make([]byte, 6*sectorSize)
	h := SparseHeader{Version: 1, Flags: flagValidNewline | flagZeroGrain, Capacity: 8, GrainSize: 1,
		DescriptorOffset: 1, DescriptorSize: 1, NumGTEsPerGT: 8, GDOffset: 2, OverHead: 4}
	h.encode(b)
	copy(b[sectorSize:], "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicSparse\"\nRW 8 SPARSE \"t.vmdk\"\n")
	binary.LittleEndian.PutUint32(b[2*sectorSize:], 3)
	for i, v := range []uint32{4, 0, 1, 5, 0, 0, 0, 0} {
		binary.LittleEndian.PutUint32(b[3*sectorSize+4*i:], v)
	}
	for i := 4 * sectorSize; i < len(b); i++ {
		b[i] = byte(i)
	}
	return b
}

// fuzzSeeds are small real images: ours (tiny sparse, streamOptimized
// with data, a text descriptor) and qemu-img's when it is installed.
func fuzzSeeds(tb testing.TB) [][]byte {
	seeds := [][]byte{tinySparse(),
		[]byte("# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\nparentFileNameHint=\"p.vmdk\"\ncreateType=\"monolithicFlat\"\nRW 2048 FLAT \"f.bin\" 0\nRW 10 ZERO\n")}
	dir := tb.TempDir()
	name := filepath.Join(dir, "s.vmdk")
	if image.Create(name, "vmdk", image.CreateOptions{Size: 1 << 20, Options: streamOpts}) == nil {
		if d, err := image.Open(name, image.Options{}); err == nil {
			d.Pwrite([]byte("some grain data"), 4096, 0)
			d.Pwrite([]byte("another grain"), 700<<10, 0)
			d.Close()
		}
		if b, err := os.ReadFile(name); err == nil {
			seeds = append(seeds, b)
		}
	}
	seeds = append(seeds, qemuSeeds(tb)...)
	return seeds
}

// FuzzOpen feeds arbitrary bytes to the vmdk opener (read-only, and
// writable to reach the stream writer), then reads, walks block status and
// asks Info. Hostile headers must give errors, never a panic, a hang or a
// giant allocation. Extent files named by a descriptor are never opened.
//
//	go test ./format/vmdk -run '^$' -fuzz FuzzOpen -fuzztime 60s
func FuzzOpen(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	saved := openExtentFile
	f.Cleanup(func() { openExtentFile = saved })
	openExtentFile = func(path string, _ bool) (block.Driver, error) {
		return nil, errors.New("fuzz: extent files are not opened")
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if p := os.Getenv("VMDK_FUZZ_TRACE"); p != "" {
			_ = os.WriteFile(p, data, 0o644) // the input in progress, to find hangs
		}
		for _, ro := range []bool{true, false} {
			node := mem.New(int64(len(data)))
			if err := node.Pwrite(data, 0, 0); err != nil {
				t.Fatal(err)
			}
			d, err := openDriver(node, image.FormatOpen{Name: "fuzz.vmdk", ReadOnly: ro, NoBacking: true})
			if err != nil {
				continue
			}
			exercise(t, d)
			d.Close()
		}
	})
}

// exercise reads (bounded), walks block status (bounded) and writes a
// little through a writer.
func exercise(t *testing.T, d block.Driver) {
	size := d.Size()
	if size < 0 {
		t.Fatalf("negative size %d", size)
	}
	buf := make([]byte, min(size, 1<<20))
	_ = d.Pread(buf, 0)
	if size > 100 {
		_ = d.Pread(buf[:100], size-100)
	}
	off := int64(0)
	for i := 0; i < 200 && off < size; i++ {
		e, err := d.BlockStatus(off, size-off)
		if err != nil {
			break
		}
		if e.Off != off || e.Len <= 0 || e.Len > size-off {
			t.Fatalf("BlockStatus(%d) = %+v", off, e)
		}
		off = e.End()
	}
	if _, err := d.Info(); err != nil {
		t.Logf("info: %v", err)
	}
	if d.Caps().Write && size > 0 {
		_ = d.Pwrite([]byte("x"), size/2, 0)
		_ = d.Flush()
	}
}

// TestCorruptHeaders: truncated and corrupted images give clear errors
// wrapping block.ErrCorrupt (or ErrNotSupported), never a panic.
func TestCorruptHeaders(t *testing.T) {
	good := tinySparse()
	patch := func(at int, v []byte) []byte {
		b := append([]byte(nil), good...)
		copy(b[at:], v)
		return b
	}
	le64 := func(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
	le32 := func(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
	cases := map[string][]byte{
		"truncated header":      good[:100],
		"bad version":           patch(4, le32(9)),
		"grain size zero":       patch(20, le64(0)),
		"grain size not pow2":   patch(20, le64(3)),
		"huge grain size":       patch(20, le64(1<<40)),
		"no GTEs":               patch(44, le32(0)),
		"huge GTEs":             patch(44, le32(1<<30)),
		"huge capacity":         patch(12, le64(1<<60)),
		"GD past EOF":           patch(56, le64(1<<40)),
		"GD needs more entries": patch(12, le64(1<<20)),
		"GT past EOF":           patch(2*sectorSize, le32(0xfffffff0)),
		"huge descriptor":       patch(36, le64(1<<40)),
		"bad compression":       patch(8, le32(flagCompressed|flagMarkers))[:],
		"stream without footer": patch(56, le64(gdAtEnd)),
		"bad extent line":       []byte("# Disk DescriptorFile\nRW abc SPARSE \"x\"\n"),
		"no extents":            []byte("# Disk DescriptorFile\nversion=1\n"),
		"binary junk":           {0, 1, 2, 3, 4, 5, 0, 0, 9},
	}
	for name, b := range cases {
		node := mem.New(int64(len(b)))
		if err := node.Pwrite(b, 0, 0); err != nil {
			t.Fatal(err)
		}
		_, err := Open(node, image.FormatOpen{Name: "c.vmdk", ReadOnly: true, NoBacking: true})
		if err == nil {
			t.Errorf("%s: opened", name)
			continue
		}
		if !errors.Is(err, block.ErrCorrupt) && !errors.Is(err, block.ErrNotSupported) {
			t.Errorf("%s: %v does not wrap ErrCorrupt", name, err)
		}
	}
	// A data grain whose sector is past the end of the file: reads fail,
	// they do not panic.
	b := patch(3*sectorSize, le32(1000))
	node := mem.New(int64(len(b)))
	node.Pwrite(b, 0, 0)
	img, err := Open(node, image.FormatOpen{Name: "c.vmdk", ReadOnly: true, NoBacking: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := img.Pread(make([]byte, 512), 0); !errors.Is(err, block.ErrCorrupt) {
		t.Fatalf("read of a grain past EOF = %v", err)
	}
	// The good one reads as built: data, unallocated, zeroed, data.
	node = mem.New(int64(len(good)))
	node.Pwrite(good, 0, 0)
	img, err = Open(node, image.FormatOpen{Name: "t.vmdk", ReadOnly: true, NoBacking: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []block.Status{block.Data | block.Allocated, 0, block.Zero, block.Data | block.Allocated, 0}
	for i, st := range want {
		e, err := img.BlockStatus(int64(i)*sectorSize, sectorSize)
		if err != nil || e.Status != st {
			t.Fatalf("grain %d: %+v, %v; want status %v", i, e, err, st)
		}
	}
	p := make([]byte, 4*sectorSize)
	if err := img.Pread(p, 0); err != nil || p[0] != good[4*sectorSize] || p[3*sectorSize+1] != good[5*sectorSize+1] || p[2*sectorSize] != 0 {
		t.Fatalf("read: %v", err)
	}
}

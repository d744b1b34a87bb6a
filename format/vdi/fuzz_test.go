package vdi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/protocol/mem"
)

// tinyDynamic builds a dynamic VDI of 4 blocks of 512 bytes: blocks 0 and
// 2 allocated (data blocks 1 and 0), 1 unallocated, 3 discarded.
func tinyDynamic() []byte {
	h := Header{Version: version11, HeaderSize: headerSize, ImageType: typeDynamic, OffsetBmap: 0x200, OffsetData: 0x400,
		SectorSize: sectorSize, DiskSize: 4 * 512, BlockSize: 512, BlocksInImage: 4, BlocksAllocated: 2}
	b := make([]byte, 0x400+2*512)
	h.encode(b)
	for i, v := range []uint32{1, entryUnallocated, 0, entryDiscarded} {
		binary.LittleEndian.PutUint32(b[0x200+4*i:], v)
	}
	for i := 0x400; i < len(b); i++ {
		b[i] = byte(i>>9) + 1
	}
	return b
}

func qemuSeeds(tb testing.TB) [][]byte {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		return nil
	}
	name := filepath.Join(tb.TempDir(), "q.vdi")
	if exec.Command("qemu-img", "create", "-f", "vdi", name, "2M").Run() != nil {
		return nil
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil
	}
	return [][]byte{b}
}

// FuzzOpen feeds arbitrary bytes to Open (read-only and writable), then
// reads, walks block status and writes a little. Hostile headers must give
// errors, never a panic, a hang or a giant allocation.
//
//	go test ./format/vdi -run '^$' -fuzz FuzzOpen -fuzztime 60s
func FuzzOpen(f *testing.F) {
	f.Add(tinyDynamic())
	for _, s := range qemuSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, ro := range []bool{true, false} {
			node := mem.NewGrowable(int64(len(data)))
			if err := node.Pwrite(data, 0, 0); err != nil {
				t.Fatal(err)
			}
			d, err := Open(node, image.FormatOpen{Name: "fuzz.vdi", ReadOnly: ro})
			if err != nil {
				continue
			}
			size := d.Size()
			buf := make([]byte, min(size, 1<<20))
			_ = d.Pread(buf, 0)
			for off, i := int64(0), 0; off < size && i < 100; i++ {
				e, err := d.BlockStatus(off, size-off)
				if err != nil {
					break
				}
				if e.Off != off || e.Len <= 0 || e.Len > size-off {
					t.Fatalf("BlockStatus(%d) = %+v", off, e)
				}
				off = e.End()
			}
			if !ro && size > 0 {
				_ = d.Pwrite([]byte("xyz"), size/2, 0)
				_ = d.WriteZeroes(0, min(size, 4096), 0)
			}
			d.Close()
		}
	})
}

// TestCorruptHeaders: truncated and corrupted headers give errors wrapping
// block.ErrCorrupt or ErrNotSupported, never a panic.
func TestCorruptHeaders(t *testing.T) {
	good := tinyDynamic()
	patch := func(at int, v uint32) []byte {
		b := append([]byte(nil), good...)
		binary.LittleEndian.PutUint32(b[at:], v)
		return b
	}
	cases := map[string][]byte{
		"truncated":           good[:0x100],
		"bad signature":       patch(0x40, 0x12345678),
		"version 1.0":         patch(0x44, 0x00010000),
		"differencing":        patch(0x4c, 4),
		"sector size 4096":    patch(0x168, 4096),
		"block size 0":        patch(0x178, 0),
		"block size not pow2": patch(0x178, 3000),
		"huge block extra":    patch(0x17c, 1<<30),
		"huge block count":    patch(0x180, 0x3fffffff),
		"allocated > blocks":  patch(0x184, 5),
		"disk size > blocks":  patch(0x170, 1<<30),
		"bmap past EOF":       patch(0x154, 1<<30),
		"bmap in header":      patch(0x154, 0x10),
		"data over bmap":      patch(0x158, 0x201),
		"data past EOF":       patch(0x158, 1<<30),
		"entry mapped twice":  patch(0x208, 1),
	}
	for name, b := range cases {
		node := mem.New(int64(len(b)))
		if err := node.Pwrite(b, 0, 0); err != nil {
			t.Fatal(err)
		}
		_, err := Open(node, image.FormatOpen{Name: "c.vdi"}) // writable: map entries are checked
		if err == nil {
			t.Errorf("%s: opened", name)
			continue
		}
		if !errors.Is(err, block.ErrCorrupt) && !errors.Is(err, block.ErrNotSupported) {
			t.Errorf("%s: %v does not wrap ErrCorrupt or ErrNotSupported", name, err)
		}
	}
	// Read-only, a block mapped past the end of the file fails on read.
	b := patch(0x200, 1000)
	node := mem.New(int64(len(b)))
	node.Pwrite(b, 0, 0)
	img, err := Open(node, image.FormatOpen{Name: "c.vdi", ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := img.Pread(make([]byte, 512), 0); !errors.Is(err, block.ErrCorrupt) {
		t.Fatalf("read of a block past EOF = %v", err)
	}
	// The good one reads as built.
	node = mem.New(int64(len(good)))
	node.Pwrite(good, 0, 0)
	img, err = Open(node, image.FormatOpen{Name: "t.vdi", ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 4*512)
	if err := img.Pread(p, 0); err != nil || p[0] != 4 || p[512] != 0 || p[1024] != 3 || p[1536] != 0 {
		t.Fatalf("read: %v, bytes %d %d %d %d", err, p[0], p[512], p[1024], p[1536])
	}
	want := []block.Status{block.Data | block.Allocated, block.Zero, block.Data | block.Allocated, block.Zero}
	for i, st := range want {
		e, err := img.BlockStatus(int64(i)*512, 512)
		if err != nil || e.Status != st {
			t.Fatalf("block %d: %+v, %v; want %v", i, e, err, st)
		}
	}
}

// TestReopenAfterCrash: a crash between writing a block's map entry and
// the header's blocks_allocated (or after writing the block alone) must not
// make the next allocation reuse that block.
func TestReopenAfterCrash(t *testing.T) {
	for _, c := range []struct {
		name   string
		mapped bool
	}{{"mapped, header stale", true}, {"written, unmapped", false}} {
		t.Run(c.name, func(t *testing.T) {
			b := tinyDynamic()
			// Block 3 was written as data block 2 (appended), then the
			// crash: the header still says 2 blocks are allocated.
			b = append(b, bytes.Repeat([]byte{0xee}, 512)...)
			if c.mapped {
				binary.LittleEndian.PutUint32(b[0x200+4*3:], 2)
			}
			node := mem.NewGrowable(int64(len(b)))
			if err := node.Pwrite(b, 0, 0); err != nil {
				t.Fatal(err)
			}
			img, err := Open(node, image.FormatOpen{Name: "crash.vdi"})
			if err != nil {
				t.Fatal(err)
			}
			if err := img.Pwrite([]byte{0x11}, 512+7, 0); err != nil { // allocates block 1
				t.Fatal(err)
			}
			p := make([]byte, 4*512)
			if err := img.Pread(p, 0); err != nil {
				t.Fatal(err)
			}
			if p[512+7] != 0x11 || p[512] != 0 || p[0] != 4 || p[1024] != 3 {
				t.Fatalf("after the allocation: % x", []byte{p[0], p[512], p[512+7], p[1024]})
			}
			if c.mapped && p[1536] != 0xee {
				t.Fatalf("the block written before the crash was reused: %#x", p[1536])
			}
		})
	}
}

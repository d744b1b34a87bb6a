package qcow2

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/protocol/mem"
)

// FuzzOpen feeds arbitrary bytes to Open, then reads, walks block status,
// checks, and writes. Hostile headers and tables must give errors, never a
// panic, a hang or a giant allocation. Run it with:
//
//	go test ./format/qcow2 -run '^$' -fuzz FuzzOpen -fuzztime 60s
func FuzzOpen(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.qcow2")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err == nil {
			f.Add(b)
		}
	}
	// A tiny fresh image and hostile variants of its header.
	node := mem.NewGrowable(0)
	if err := CreateOn(node, image.CreateOptions{Size: 1 << 20, Options: map[string]string{"cluster_size": "512"}}); err == nil {
		b := make([]byte, node.Size())
		if node.Pread(b, 0) == nil {
			f.Add(b)
			for _, patch := range []struct {
				at  int
				val []byte
			}{
				{36, []byte{0xff, 0xff, 0xff, 0xff}},       // huge l1_size
				{56, []byte{0x7f, 0xff, 0xff, 0xff}},       // huge refcount_table_clusters
				{40, []byte{0, 0, 0, 0, 0, 0, 0x02, 0}},    // L1 over the refcount table
				{48, []byte{0, 0, 0, 0, 0x10, 0, 0, 0}},    // refcount table past EOF
				{60, []byte{0, 0, 0x10, 0}},                // many snapshots
				{72, []byte{0xff, 0, 0, 0, 0, 0, 0, 0x80}}, // unknown incompatible bits
			} {
				c := append([]byte(nil), b...)
				copy(c[patch.at:], patch.val)
				f.Add(c)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		node := mem.New(int64(len(data)))
		if err := node.Pwrite(data, 0, 0); err != nil {
			t.Fatal(err)
		}
		img, err := Open(node, image.FormatOpen{Name: "fuzz", ReadOnly: true, NoBacking: true})
		if err != nil {
			return
		}
		exercise(img, false)
		img.Close()

		wnode := mem.NewGrowable(int64(len(data)))
		_ = wnode.Pwrite(data, 0, 0)
		img, err = Open(wnode, image.FormatOpen{Name: "fuzz", NoBacking: true})
		if err != nil {
			return
		}
		exercise(img, true)
		img.Close()
	})
}

// exercise touches a bounded part of an image, ignoring errors.
func exercise(img *Image, write bool) {
	size := img.Size()
	buf := make([]byte, 64<<10)
	for _, off := range []int64{0, size / 2, max(size-int64(len(buf)), 0)} {
		n := min(int64(len(buf)), size-off)
		if n > 0 {
			_ = img.Pread(buf[:n], off)
		}
	}
	for off, i := int64(0), 0; off < size && i < 64; i++ {
		e, err := img.BlockStatus(off, size-off)
		if err != nil || e.Len <= 0 {
			break
		}
		off = e.End()
	}
	if write && size > 0 {
		n := min(size, 8192)
		_ = img.Pwrite(buf[:n], 0, 0)
		_ = img.WriteZeroes(size/2, min(size-size/2, 1<<20), block.MayUnmap)
		_ = img.Discard(0, min(size, 4<<20), 0)
		_ = img.Flush()
	}
	_, _ = img.Check(RepairNone)
}

package qcow2

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/protocol/mem"
)

// FuzzOpen feeds arbitrary bytes to Open, then reads, walks block status,
// checks, and writes. Hostile headers and tables must give errors, never a
// panic, a hang or a giant allocation. Run it with:
//
//	go test ./format/qcow2 -run '^$' -fuzz FuzzOpen -fuzztime 60s -fuzzminimizetime 0
//
// -fuzzminimizetime 0 matters: the seeds are real images of 20-120 KiB,
// and minimizing every new interesting input of that size byte by byte
// stalls the engine for minutes (it reports 0 execs/sec). Without it a
// 60 s run does some 400k executions. TestMutatedImages runs the same body
// over random mutations without the engine, as part of go test.
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
	f.Fuzz(func(t *testing.T, data []byte) { fuzzBody(data) })
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
		// Snapshot operations walk every table: a hostile tree must give
		// errors. The image's own first snapshot is applied and deleted
		// too, when it has one.
		if sn := img.Snapshots(); len(sn) > 0 {
			_ = img.ApplySnapshot(sn[0].ID)
			_ = img.DeleteSnapshot(sn[0].Name)
		}
		if _, err := img.CreateSnapshot("fuzz", time.Unix(0, 0)); err == nil {
			_ = img.Pwrite(buf[:min(size, 4096)], 0, 0)
			_ = img.ApplySnapshot("fuzz")
			_ = img.DeleteSnapshot("fuzz")
		}
	}
	_, _ = img.Check(RepairNone)
}

// fuzzBody is FuzzOpen's body: open read-only and writable, exercise.
func fuzzBody(data []byte) {
	node := mem.New(int64(len(data)))
	_ = node.Pwrite(data, 0, 0)
	if img, err := Open(node, image.FormatOpen{Name: "fuzz", ReadOnly: true, NoBacking: true}); err == nil {
		exercise(img, false)
		img.Close()
	}
	// The first snapshot's view (convert -l), when the image has one.
	snap := image.FormatOpen{Name: "fuzz", ReadOnly: true, NoBacking: true, Options: map[string]string{OptionSnapshot: "1"}}
	if img, err := Open(node, snap); err == nil {
		exercise(img, false)
		img.Close()
	}
	wnode := mem.NewGrowable(int64(len(data)))
	_ = wnode.Pwrite(data, 0, 0)
	if img, err := Open(wnode, image.FormatOpen{Name: "fuzz", NoBacking: true}); err == nil {
		exercise(img, true)
		img.Close()
	}
}

// TestMutatedImages runs fuzzBody over random byte mutations of the seed
// images (bytes, 8-byte words set to random or extreme values, truncation),
// each bounded in time: no panic, no hang.
func TestMutatedImages(t *testing.T) {
	seeds, _ := filepath.Glob("testdata/*.qcow2")
	var corpus [][]byte
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil {
			corpus = append(corpus, b)
		}
	}
	if len(corpus) == 0 {
		t.Skip("no seed images in testdata")
	}
	seed := time.Now().UnixNano()
	if v, err := strconvSeed(); err == nil && v != 0 {
		seed = v
	}
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewSource(seed))
	extremes := []uint64{0, 1, 0x200, 0x10000, 1 << 31, 1 << 32, 1<<56 - 512, 1 << 62, ^uint64(0)}
	for i := 0; i < 3000; i++ {
		data := append([]byte(nil), corpus[r.Intn(len(corpus))]...)
		for k := r.Intn(6); k >= 0 && len(data) > 16; k-- {
			p := r.Intn(len(data) - 8)
			// Favour the header and the first clusters, where the tables are.
			if r.Intn(2) == 0 {
				p = r.Intn(min(len(data)-8, 4096))
			}
			switch r.Intn(4) {
			case 0:
				data[p] = byte(r.Intn(256))
			case 1:
				v := extremes[r.Intn(len(extremes))]
				for j := range 8 {
					data[p+j] = byte(v >> (56 - 8*j))
				}
			case 2:
				data[p] ^= 1 << r.Intn(8)
			case 3:
				data = data[:1+r.Intn(len(data)-1)]
			}
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			fuzzBody(data)
		}()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = os.WriteFile(filepath.Join(t.TempDir(), "hang.bin"), data, 0o644)
			t.Fatalf("input %d (seed %d) takes more than 20 s", i, seed)
		}
	}
}

func strconvSeed() (int64, error) {
	s := os.Getenv("THINBLK_SEED")
	if s == "" {
		return 0, nil
	}
	var v int64
	_, err := fmt.Sscan(s, &v)
	return v, err
}

package qcow2

import (
	"math/rand"
	"sync"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/protocol/mem"
)

// TestConcurrentSameCluster has many goroutines write disjoint pieces of
// the same few clusters of a fresh overlay at once (every first write to a
// cluster allocates it and copies the rest from the backing file), each
// reading its piece back at once. Every piece must read back, the backing
// data must survive past them, and the image must check clean.
func TestConcurrentSameCluster(t *testing.T) {
	for _, opts := range []map[string]string{
		{"cluster_size": "65536"},
		{"cluster_size": "16384", "extended_l2": "on"},
		{"cluster_size": "4096", "compat": "0.10"},
	} {
		size := int64(1 << 20)
		back := mem.New(size)
		backData := make([]byte, size)
		rand.New(rand.NewSource(1)).Read(backData)
		if err := back.Pwrite(backData, 0, 0); err != nil {
			t.Fatal(err)
		}
		img := newMemImage(t, size, opts, back)
		cs := img.clusterSize
		const workers = 16
		piece := cs / 64
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Worker w owns pieces w, w+workers, ... of clusters 0..3.
				for c := int64(0); c < 4; c++ {
					for p := int64(w); p < 64; p += workers {
						off := c*cs + p*piece
						buf := make([]byte, piece)
						for i := range buf {
							buf[i] = byte(w + 1)
						}
						if err := img.Pwrite(buf, off, 0); err != nil {
							errs <- err
							return
						}
						got := make([]byte, piece)
						if err := img.Pread(got, off); err != nil {
							errs <- err
							return
						}
						for i := range got {
							if got[i] != byte(w+1) {
								errs <- block.ErrCorrupt
								return
							}
						}
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("%v: %v", opts, err)
		}
		all := readAll(t, img)
		for c := int64(0); c < 4; c++ {
			for p := int64(0); p < 64; p++ {
				want := byte(p%workers + 1)
				off := c*cs + p*piece
				for i := off; i < off+piece; i++ {
					if all[i] != want {
						t.Fatalf("%v: byte %d is %d, want %d", opts, i, all[i], want)
					}
				}
			}
		}
		mustEqual(t, all[4*cs:], backData[4*cs:], "backing data past the written clusters")
		res, err := img.Check(RepairNone)
		if err != nil || res.Corruptions != 0 || res.Leaks != 0 {
			t.Fatalf("%v: check %+v %v", opts, res, err)
		}
	}
}

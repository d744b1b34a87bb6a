package copy

import (
	"bytes"
	"context"
	"math/rand"
	"testing"
)

// sparseClustered is a clustered counter whose clusters stay sparse after a
// partial write (as VHDX and VHD blocks do): it says so with SparseClusters.
type sparseClustered struct{ clustered }

func (sparseClustered) SparseClusters() bool { return true }

// TestSparseClustersNotFilled converts a few scattered 4 KiB granules into
// a target with 8 MiB clusters that stay sparse: only the non-zero granules
// may be written (a VHDX target once got every block it touched written
// whole, zeros included: 400 KiB of data in a 2 GiB disk became a 1.6 GB
// file, where qemu-img's is 2.4 MB). The same copy into an ordinary
// clustered target still writes whole clusters.
func TestSparseClustersNotFilled(t *testing.T) {
	s := seed(t)
	r := rand.New(rand.NewSource(s))
	const size, cluster = 64 << 20, 8 << 20
	src := newFake(size, nil)
	want := make([]byte, size)
	granules := map[int64]bool{}
	for range 12 {
		off := r.Int63n(size/4096) * 4096
		p := make([]byte, 4096)
		r.Read(p)
		p[0] = 1 // never all zeros
		if err := src.Pwrite(p, off, 0); err != nil {
			t.Fatal(err)
		}
		copy(want[off:], p)
		granules[off] = true
	}
	// A 1 MiB data extent that is zero but for one granule: the zeros in it
	// must be detected at 4 KiB, not at the cluster size.
	ext := make([]byte, 1<<20)
	in := r.Int63n(256) * 4096
	for i := range 4096 {
		ext[in+int64(i)] = byte(i%251 + 1)
	}
	extOff := r.Int63n((size-int64(len(ext)))/4096) * 4096
	if err := src.Pwrite(ext, extOff, 0); err != nil {
		t.Fatal(err)
	}
	copy(want[extOff:], ext)
	for off := range granules {
		if off >= extOff && off < extOff+int64(len(ext)) {
			delete(granules, off)
		}
	}
	for off := extOff; off < extOff+int64(len(ext)); off += 4096 {
		if !bytes.Equal(want[off:off+4096], make([]byte, 4096)) {
			granules[off] = true
		}
	}
	wantBytes := int64(len(granules)) * 4096

	sc := newCounter(newFake(size, nil))
	sc.cluster = cluster
	if _, err := Run(context.Background(), src, sparseClustered{clustered{sc}}, Options{TargetIsZero: true}); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, sc); !bytes.Equal(got, want) {
		t.Fatal("sparse-clustered target: content differs from the source")
	}
	if sc.writeBytes != wantBytes || sc.zeroBytes != 0 {
		t.Errorf("sparse-clustered target: wrote %d data bytes and %d zero bytes, want %d and 0 (the non-zero 4 KiB granules only)",
			sc.writeBytes, sc.zeroBytes, wantBytes)
	}

	cc := newCounter(newFake(size, nil))
	cc.cluster = cluster
	if _, err := Run(context.Background(), src, clustered{cc}, Options{TargetIsZero: true}); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, cc); !bytes.Equal(got, want) {
		t.Fatal("clustered target: content differs from the source")
	}
	for _, w := range cc.writes {
		if w.off%cluster != 0 || w.n%cluster != 0 {
			t.Errorf("clustered target: write [%d, +%d) is not whole clusters", w.off, w.n)
		}
	}
}

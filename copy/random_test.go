package copy

import (
	"context"
	"math/rand"
	"testing"

	"github.com/thinblk/thinblk/block"
)

// TestRunRandomOptions copies random chains with random option mixes and
// checks the one thing every mix must keep: the target reads what the
// sources read (over the target's backing where there is one).
func TestRunRandomOptions(t *testing.T) {
	s := seed(t)
	for i := range 40 {
		r := rand.New(rand.NewSource(s + int64(i)))
		granule := int64(4096)
		size := (int64(1+r.Intn(48))*granule*4 + int64(r.Intn(2))*granule)
		// A source chain of 1-3 layers.
		var src block.Driver
		layers := 1 + r.Intn(3)
		var nodes []block.Driver
		for range layers {
			n := newFake(size, src)
			fill(t, r, n, nil)
			nodes = append(nodes, n)
			src = n
		}
		want := readAll(t, src)
		o := Options{
			Parallel:    1 + r.Intn(8),
			OutOfOrder:  r.Intn(2) == 0,
			RequestSize: int64(1+r.Intn(8)) * 8192,
		}
		switch r.Intn(3) {
		case 0:
			o.SparseSize = FullyAllocate
		case 1:
			o.SparseSize = int64(1+r.Intn(4)) * 4096
		}
		var dst block.Driver
		fresh := true
		switch r.Intn(4) {
		case 0: // overlay over the source's lowest layer: copy with Base
			if layers > 1 {
				o.Base = nodes[0]
				dst = newFake(size, nodes[0])
				fresh = false
			}
		case 1: // a clustered target, maybe compressed
			c := newCounter(newFake(size, nil))
			c.cluster = 16384
			dst = clustered{c}
			o.Compress = r.Intn(2) == 0
			if o.Compress {
				o.OutOfOrder = false
			}
		case 2: // an old target full of junk
			old := newFake(size, nil)
			fill(t, r, old, nil)
			dst = old
			fresh = false
		}
		if dst == nil {
			dst = newFake(size, nil)
		}
		o.TargetIsZero = fresh && r.Intn(4) != 0
		if _, err := Run(context.Background(), src, dst, o); err != nil {
			t.Fatalf("case %d (%+v): %v", i, o, err)
		}
		if d := firstDiff(readAll(t, dst), want); d >= 0 {
			t.Fatalf("case %d (%+v, %d layers, size %d): content differs at %d", i, o, layers, size, d)
		}
	}
}

package block_test

import (
	"math/rand/v2"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/block/blocktest"
	"github.com/thinblk/thinblk/internal/testutil"
)

// chainAt is the reference answer for one byte: the depth of the first
// node in chain (top first) that describes it, and that node's status bits;
// a byte past the end of a shorter node is Zero at that node's depth; a
// byte no node describes is unallocated at the last depth asked.
func chainAt(t *testing.T, chain []block.Driver, x int64) (int, block.Status) {
	t.Helper()
	for i, d := range chain {
		if x >= d.Size() {
			return i, block.Zero
		}
		e, err := d.BlockStatus(x, 1)
		if err != nil {
			t.Fatal(err)
		}
		if e.Status.Present() || i == len(chain)-1 {
			return i, e.Status
		}
	}
	panic("unreachable")
}

// scramble writes, zeroes and discards random granule-aligned ranges.
func scramble(t *testing.T, rng *rand.Rand, d block.Driver) {
	t.Helper()
	const g = 4096
	buf := make([]byte, 16*g)
	for range 40 {
		n := g * (1 + rng.Int64N(16))
		off := g * rng.Int64N((d.Size()-n)/g+1)
		var err error
		switch rng.IntN(4) {
		case 0, 1:
			for i := range buf[:n] {
				buf[i] = byte(1 + rng.IntN(255))
			}
			err = d.Pwrite(buf[:n], off, 0)
		case 2:
			err = d.WriteZeroes(off, n, block.Flags(rng.IntN(2))*block.MayUnmap)
		case 3:
			err = d.Discard(off, n, 0)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestChainStatus checks ChainStatus byte by byte against chainAt on a
// chain of three fakes of different sizes, also through wrappers and with a
// base that stops the walk.
func TestChainStatus(t *testing.T) {
	rng := rand.New(rand.NewPCG(uint64(testutil.Seed(t)), 2))
	const g = 4096
	base := blocktest.NewFake(blocktest.FakeOptions{Size: 96 * g, Caps: blocktest.FullCaps})
	mid := blocktest.NewFake(blocktest.FakeOptions{Size: 128 * g, Caps: blocktest.FullCaps, Backing: base})
	top := blocktest.NewFake(blocktest.FakeOptions{Size: 160 * g, Caps: blocktest.FullCaps, Backing: mid})
	for _, d := range []block.Driver{base, mid, top} {
		scramble(t, rng, d)
	}
	wrapped := block.WithPolicy(block.Align(top), block.Policy{DetectZeroes: block.DetectZeroesOn})
	for _, tc := range []struct {
		name  string
		d     block.Driver
		base  block.Driver
		chain []block.Driver
	}{
		{"whole chain", top, nil, []block.Driver{top, mid, base}},
		{"through wrappers", wrapped, nil, []block.Driver{top, mid, base}},
		{"base stops at mid", top, mid, []block.Driver{top}},
		{"base stops at base", top, base, []block.Driver{top, mid}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range 60 {
				off := rng.Int64N(top.Size())
				n := 1 + rng.Int64N(top.Size()-off)
				end := off + n
				for cur := off; cur < end; {
					e, err := block.ChainStatus(tc.d, cur, end-cur, tc.base)
					if err != nil {
						t.Fatal(err)
					}
					if e.Off != cur || e.Len <= 0 || e.End() > end {
						t.Fatalf("ChainStatus(%d, %d) = %+v: does not tile the range", cur, end-cur, e)
					}
					for x := e.Off; x < e.End(); x += max(1, min(g/2, e.End()-x-1)) {
						depth, st := chainAt(t, tc.chain, x)
						if depth != e.Depth || st&(block.Data|block.Zero) != e.Status&(block.Data|block.Zero) {
							t.Fatalf("ChainStatus(%d, %d) = %+v, but byte %d is %v at depth %d",
								cur, end-cur, e, x, st, depth)
						}
					}
					cur = e.End()
				}
			}
		})
	}
}

// TestChainStatusReadsAgree: what ChainStatus calls zero reads as zeros
// through the top node, and data found at depth k equals that node's bytes.
func TestChainStatusReadsAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(uint64(testutil.Seed(t)), 3))
	const g = 4096
	base := blocktest.NewFake(blocktest.FakeOptions{Size: 64 * g, Caps: blocktest.FullCaps})
	top := blocktest.NewFake(blocktest.FakeOptions{Size: 96 * g, Caps: blocktest.FullCaps, Backing: base})
	scramble(t, rng, base)
	scramble(t, rng, top)
	chain := []block.Driver{top, base}
	for off := int64(0); off < top.Size(); {
		e, err := block.ChainStatus(top, off, top.Size()-off, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, e.Len)
		if err := top.Pread(got, e.Off); err != nil {
			t.Fatal(err)
		}
		want := make([]byte, e.Len)
		if e.Status&block.Data != 0 {
			if err := chain[e.Depth].Pread(want, e.Off); err != nil {
				t.Fatal(err)
			}
		}
		if e.Status&block.Data == 0 || e.Status&block.Zero != 0 {
			clear(want)
		}
		if string(got) != string(want) {
			t.Fatalf("extent %+v: the top node reads other bytes", e)
		}
		off = e.End()
	}
}

package block_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/block/blocktest"
	"github.com/thinblk/thinblk/filter/count"
	"github.com/thinblk/thinblk/protocol/mem"
)

func TestAlignIdentity(t *testing.T) {
	for _, a := range []int64{0, 1} {
		f := blocktest.NewFake(blocktest.FakeOptions{Size: 1 << 20, Caps: blocktest.FullCaps,
			Limits: block.Limits{RequestAlign: a}})
		if d := block.Align(f); d != block.Driver(f) {
			t.Errorf("Align on RequestAlign %d wrapped the node", a)
		}
	}
}

// TestAlignConforms runs the suite with byte-aligned requests through Align
// over fakes that reject unaligned Pread/Pwrite.
func TestAlignConforms(t *testing.T) {
	device := blocktest.FullCaps
	device.DiscardZeroes, device.BlockStatus = false, false
	for _, tc := range []struct {
		align, size int64
		caps        block.Caps
	}{
		{512, 4 << 20, blocktest.FullCaps},
		{4096, 4 << 20, device},
		{4096, 4<<20 + 512*5, blocktest.FullCaps}, // short last block
	} {
		t.Run(fmt.Sprintf("align%d-size%d-dz%v", tc.align, tc.size, tc.caps.DiscardZeroes), func(t *testing.T) {
			t.Parallel()
			blocktest.Run(t, func(t *testing.T, size int64) block.Driver {
				return block.Align(blocktest.NewFake(blocktest.FakeOptions{Size: size, Caps: tc.caps,
					Granule: 4096, Limits: block.Limits{RequestAlign: tc.align, MaxTransfer: 256 << 10}}))
			}, blocktest.Options{Size: tc.size, Align: 1, Concurrent: true})
		})
	}
}

// TestAlignSendsOnlyAligned: whatever the caller sends, the node below sees
// aligned Pread/Pwrite and aligned WriteZeroes/Discard only.
func TestAlignSendsOnlyAligned(t *testing.T) {
	const a = 4096
	c := count.New(mem.New(1 << 20))
	c.Record(true)
	lim := c.Limits()
	if lim.RequestAlign != 1 {
		t.Fatalf("mem RequestAlign %d, the test wants a byte-addressable node below", lim.RequestAlign)
	}
	d := block.Align(&requireAlign{Driver: c, align: a})
	if got := d.Limits(); got.RequestAlign != 1 || got.DiscardGranularity != lim.DiscardGranularity {
		t.Fatalf("Limits %+v, want RequestAlign 1 and the node's DiscardGranularity", got)
	}
	f := blocktest.NewFake(blocktest.FakeOptions{Size: 1 << 20, Limits: block.Limits{RequestAlign: a}})
	if got := block.Align(f).Limits(); got.RequestAlign != 1 || got.DiscardGranularity != a || got.DiscardAlignment != a {
		t.Fatalf("Limits %+v, want RequestAlign 1 and discard granularity/alignment %d (was 0: RequestAlign)", got, a)
	}
	buf := make([]byte, 3*a)
	for _, r := range [][2]int64{{1, 10}, {a - 1, 2}, {a, a}, {100, 3*a - 200}, {a + 7, 2 * a}, {0, 3 * a}} {
		off, n := r[0], r[1]
		if err := d.Pwrite(buf[:n], off, 0); err != nil {
			t.Fatalf("pwrite %d+%d: %v", off, n, err)
		}
		if err := d.Pread(buf[:n], off); err != nil {
			t.Fatalf("pread %d+%d: %v", off, n, err)
		}
		if err := d.WriteZeroes(off, n, 0); err != nil {
			t.Fatalf("write-zeroes %d+%d: %v", off, n, err)
		}
		if err := d.Discard(off, n, 0); err != nil {
			t.Fatalf("discard %d+%d: %v", off, n, err)
		}
	}
	for _, r := range c.Requests() {
		if r.Off%a != 0 || r.Len%a != 0 {
			t.Errorf("unaligned request reached the node: %v %d+%d", r.Op, r.Off, r.Len)
		}
	}
	// An aligned request passes as one call, unchanged.
	c.Reset()
	if err := d.Pwrite(buf[:2*a], a, block.FUA); err != nil {
		t.Fatal(err)
	}
	if reqs := c.Requests(); len(reqs) != 1 || reqs[0].Off != a || reqs[0].Len != 2*a || reqs[0].Flags != block.FUA {
		t.Fatalf("aligned write became %+v", reqs)
	}
}

// requireAlign advertises an alignment over a byte-addressable node.
type requireAlign struct {
	block.Driver
	align int64
}

func (r *requireAlign) Limits() block.Limits {
	l := r.Driver.Limits()
	l.RequestAlign = r.align
	return l
}

func TestAlignNoFallback(t *testing.T) {
	f := blocktest.NewFake(blocktest.FakeOptions{Size: 1 << 20, Caps: blocktest.FullCaps,
		Limits: block.Limits{RequestAlign: 512}})
	fill(t, f, 0x33)
	c := count.New(f)
	d := block.Align(c)
	if err := d.WriteZeroes(100, 4096, block.NoFallback); !errors.Is(err, block.ErrNotSupported) {
		t.Fatalf("unaligned NoFallback: %v, want ErrNotSupported", err)
	}
	if got := c.Counts(); got != (count.Counts{}) {
		t.Fatalf("a refused NoFallback request reached the node: %+v", got)
	}
	if err := d.WriteZeroes(512, 4096, block.NoFallback); err != nil {
		t.Fatalf("aligned NoFallback: %v", err)
	}
	expect(t, f, 0x33, 512, 4096)
}

// TestAlignConcurrentRMW: unaligned writes to disjoint bytes of the same
// blocks, in parallel, must not lose each other's updates.
func TestAlignConcurrentRMW(t *testing.T) {
	const a, blocks, workers, rounds = 4096, 4, 8, 200
	f := blocktest.NewFake(blocktest.FakeOptions{Size: a * blocks, Caps: blocktest.FullCaps,
		Limits: block.Limits{RequestAlign: a}})
	d := block.Align(f)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				// Worker w owns bytes w, w+workers, w+2*workers, ... of the disk.
				off := int64(w + workers*(r%(a*blocks/workers)))
				if err := d.Pwrite([]byte{byte(w + 1)}, off, 0); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	p := make([]byte, a*blocks)
	if err := d.Pread(p, 0); err != nil {
		t.Fatal(err)
	}
	for w := range workers {
		for r := range rounds {
			off := w + workers*(r%(a*blocks/workers))
			if p[off] != byte(w+1) {
				t.Fatalf("byte %d written by worker %d reads %d: a read-modify-write lost it", off, w, p[off])
			}
		}
	}
}

func TestAlignOutOfRange(t *testing.T) {
	f := blocktest.NewFake(blocktest.FakeOptions{Size: 8192, Caps: blocktest.FullCaps,
		Limits: block.Limits{RequestAlign: 4096}})
	d := block.Align(f)
	for _, r := range [][2]int64{{8000, 200}, {-1, 2}, {8192, 1}} {
		if err := d.Pwrite(make([]byte, r[1]), r[0], 0); !errors.Is(err, block.ErrOutOfRange) {
			t.Errorf("pwrite %d+%d: %v", r[0], r[1], err)
		}
		if err := d.Pread(make([]byte, r[1]), r[0]); !errors.Is(err, block.ErrOutOfRange) {
			t.Errorf("pread %d+%d: %v", r[0], r[1], err)
		}
		if err := d.WriteZeroes(r[0], r[1], 0); !errors.Is(err, block.ErrOutOfRange) {
			t.Errorf("write-zeroes %d+%d: %v", r[0], r[1], err)
		}
	}
}

func TestWrappersForwardBacking(t *testing.T) {
	base := mem.New(1 << 20)
	top := blocktest.NewFake(blocktest.FakeOptions{Size: 1 << 20, Caps: blocktest.FullCaps,
		Limits: block.Limits{RequestAlign: 512}, Backing: base})
	d := block.WithPolicy(block.Align(top), block.Policy{DetectZeroes: block.DetectZeroesOn})
	if b := block.BackingOf(d); b != block.Driver(base) {
		t.Fatalf("BackingOf(policy(align(top))) = %v", b)
	}
	if f, ok := block.As[*blocktest.Fake](d); !ok || f != top {
		t.Fatal("As did not find the fake")
	}
	if _, ok := block.As[*mem.Node](d); ok {
		t.Fatal("As descended into the backing node")
	}
	if block.BackingOf(block.Align(blocktest.NewFake(blocktest.FakeOptions{Size: 4096,
		Limits: block.Limits{RequestAlign: 512}}))) != nil {
		t.Fatal("a wrapper over a node without backing reports one")
	}
}

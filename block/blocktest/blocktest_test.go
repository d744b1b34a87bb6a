package blocktest_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/block/blocktest"
	"github.com/thinblk/thinblk/internal/testutil"
)

const mib = 1 << 20

// fakeConfigs are Fake nodes covering the contract's variations.
func fakeConfigs() map[string]blocktest.FakeOptions {
	noZero := blocktest.FullCaps
	noZero.WriteZeroes, noZero.FastZero, noZero.ZeroUnmap = false, false, false
	device := blocktest.FullCaps // a block device: discard does not promise zeros
	device.DiscardZeroes, device.BlockStatus = false, false
	noDiscard := blocktest.FullCaps
	noDiscard.Discard, noDiscard.DiscardZeroes = false, false
	slowZero := blocktest.FullCaps
	slowZero.FastZero = false
	return map[string]blocktest.FakeOptions{
		"full":      {Size: 4 * mib, Caps: blocktest.FullCaps},
		"nozero":    {Size: 4 * mib, Caps: noZero, Granule: 64 << 10},
		"device":    {Size: 4 * mib, Caps: device, Limits: block.Limits{RequestAlign: 512, MaxTransfer: 128 << 10, MaxDiscard: 256 << 10, MaxWriteZeroes: 192 << 10}},
		"nodiscard": {Size: 4 * mib, Caps: noDiscard},
		"slowzero":  {Size: 4 * mib, Caps: slowZero, Granule: 512},
		"oddsize":   {Size: 4*mib + 1000, Caps: blocktest.FullCaps, Granule: 64 << 10},
		"aligned4k-oddsize": {Size: 4*mib + 512*3, Caps: blocktest.FullCaps,
			Limits: block.Limits{RequestAlign: 4096, MaxTransfer: 1 * mib}},
	}
}

func TestFakeConforms(t *testing.T) {
	for name, fo := range fakeConfigs() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			blocktest.Run(t, func(t *testing.T, size int64) block.Driver {
				o := fo
				o.Size = size
				return blocktest.NewFake(o)
			}, blocktest.Options{Size: fo.Size, Concurrent: true, Reopen: reopenFake})
		})
	}
}

func reopenFake(d block.Driver) (block.Driver, error) {
	f := d.(*blocktest.Fake)
	if err := f.Close(); err != nil {
		return nil, err
	}
	return f.Reopen(), nil
}

func TestReadOnlyFake(t *testing.T) {
	ro := blocktest.FullCaps
	ro.Write, ro.Discard, ro.DiscardZeroes, ro.WriteZeroes, ro.FastZero, ro.ZeroUnmap, ro.FUA = false, false, false, false, false, false, false
	blocktest.Run(t, func(t *testing.T, size int64) block.Driver {
		return blocktest.NewFake(blocktest.FakeOptions{Size: size, Caps: ro})
	}, blocktest.Options{Ops: 200})
}

// TestOverlayFake runs the suite on an overlay whose backing node holds
// random data and is shorter than the overlay.
func TestOverlayFake(t *testing.T) {
	seed := testutil.Seed(t)
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	backing := blocktest.NewFake(blocktest.FakeOptions{Size: 3 * mib, Caps: blocktest.FullCaps})
	content := make([]byte, 3*mib)
	for off := 0; off < len(content); off += 64 << 10 {
		if rng.IntN(3) == 0 {
			continue // leave a hole
		}
		for i := off; i < off+64<<10; i++ {
			content[i] = byte(rng.Uint32())
		}
		if err := backing.Pwrite(content[off:off+64<<10], int64(off), 0); err != nil {
			t.Fatal(err)
		}
	}
	blocktest.Run(t, func(t *testing.T, size int64) block.Driver {
		return blocktest.NewFake(blocktest.FakeOptions{Size: size, Caps: blocktest.FullCaps, Backing: backing})
	}, blocktest.Options{Initial: content, Concurrent: true})
}

// A bug wraps a correct Fake and breaks one promise.
type bug struct {
	name string
	fake blocktest.FakeOptions
	wrap func(f *blocktest.Fake) block.Driver
}

// broken embeds the Fake so that only the overridden methods change.
type broken struct {
	*blocktest.Fake
	pwrite      func(p []byte, off int64, flags block.Flags) error
	pread       func(p []byte, off int64) error
	writeZeroes func(off, n int64, flags block.Flags) error
	discard     func(off, n int64, flags block.Flags) error
	blockStatus func(off, n int64) (block.Extent, error)
	caps        func() block.Caps
}

func (b *broken) Pwrite(p []byte, off int64, flags block.Flags) error {
	if b.pwrite != nil {
		return b.pwrite(p, off, flags)
	}
	return b.Fake.Pwrite(p, off, flags)
}

func (b *broken) Pread(p []byte, off int64) error {
	if b.pread != nil {
		return b.pread(p, off)
	}
	return b.Fake.Pread(p, off)
}

func (b *broken) WriteZeroes(off, n int64, flags block.Flags) error {
	if b.writeZeroes != nil {
		return b.writeZeroes(off, n, flags)
	}
	return b.Fake.WriteZeroes(off, n, flags)
}

func (b *broken) Discard(off, n int64, flags block.Flags) error {
	if b.discard != nil {
		return b.discard(off, n, flags)
	}
	return b.Fake.Discard(off, n, flags)
}

func (b *broken) BlockStatus(off, n int64) (block.Extent, error) {
	if b.blockStatus != nil {
		return b.blockStatus(off, n)
	}
	return b.Fake.BlockStatus(off, n)
}

func (b *broken) Caps() block.Caps {
	if b.caps != nil {
		return b.caps()
	}
	return b.Fake.Caps()
}

func bugs() []bug {
	full := blocktest.FakeOptions{Size: 1 * mib, Caps: blocktest.FullCaps}
	partialDiscard := full
	partialDiscard.Caps.DiscardZeroes = false
	slowZero := full
	slowZero.Caps.FastZero = false
	odd := full
	odd.Size = 1*mib + 1000
	return []bug{
		{"drops every 50th write", full, func(f *blocktest.Fake) block.Driver {
			var n atomic.Int64
			return &broken{Fake: f, pwrite: func(p []byte, off int64, flags block.Flags) error {
				if n.Add(1)%50 == 0 {
					return nil
				}
				return f.Pwrite(p, off, flags)
			}}
		}},
		{"read misses the last byte of reads crossing 64 KiB", full, func(f *blocktest.Fake) block.Driver {
			return &broken{Fake: f, pread: func(p []byte, off int64) error {
				if len(p) > 1 && off/(64<<10) != (off+int64(len(p))-1)/(64<<10) {
					return f.Pread(p[:len(p)-1], off)
				}
				return f.Pread(p, off)
			}}
		}},
		{"status extent one byte too long", full, func(f *blocktest.Fake) block.Driver {
			return &broken{Fake: f, blockStatus: func(off, n int64) (block.Extent, error) {
				e, err := f.BlockStatus(off, n)
				if err == nil && e.Len == n && e.End() < f.Size() {
					e.Len++
				}
				return e, err
			}}
		}},
		{"status skips a byte after zero extents", full, func(f *blocktest.Fake) block.Driver {
			return &broken{Fake: f, blockStatus: func(off, n int64) (block.Extent, error) {
				e, err := f.BlockStatus(off, n)
				if err == nil && e.Status&block.Zero != 0 && e.Len < n {
					e.Len-- // caller then asks from a byte earlier than the node means
					if e.Len == 0 {
						e.Len = 1
					}
					e.Off++
				}
				return e, err
			}}
		}},
		{"status claims zero for data", full, func(f *blocktest.Fake) block.Driver {
			return &broken{Fake: f, blockStatus: func(off, n int64) (block.Extent, error) {
				e, err := f.BlockStatus(off, n)
				if err == nil && e.Status&block.Data != 0 {
					e.Status = block.Zero | block.Allocated
				}
				return e, err
			}}
		}},
		{"status says allocated without data or zero", full, func(f *blocktest.Fake) block.Driver {
			return &broken{Fake: f, blockStatus: func(off, n int64) (block.Extent, error) {
				e, err := f.BlockStatus(off, n)
				if err == nil && e.Status == block.Zero {
					e.Status = block.Allocated
				}
				return e, err
			}}
		}},
		{"claims DiscardZeroes but keeps data", partialDiscard, func(f *blocktest.Fake) block.Driver {
			return &broken{Fake: f, caps: func() block.Caps { return blocktest.FullCaps }}
		}},
		{"write-zeroes with MayUnmap does nothing", full, func(f *blocktest.Fake) block.Driver {
			return &broken{Fake: f, writeZeroes: func(off, n int64, flags block.Flags) error {
				if flags.Has(block.MayUnmap) {
					return block.CheckRange(off, n, f.Size())
				}
				return f.WriteZeroes(off, n, flags)
			}}
		}},
		{"claims ZeroUnmap but keeps zeroed granules allocated", full, func(f *blocktest.Fake) block.Driver {
			return &broken{Fake: f, writeZeroes: func(off, n int64, flags block.Flags) error {
				return f.WriteZeroes(off, n, flags&^block.MayUnmap)
			}}
		}},
		{"NoFallback writes zeros although FastZero is false", slowZero, func(f *blocktest.Fake) block.Driver {
			return &broken{Fake: f, writeZeroes: func(off, n int64, flags block.Flags) error {
				return f.WriteZeroes(off, n, flags&^block.NoFallback)
			}}
		}},
		{"write-zeroes fails with ErrNotSupported without NoFallback", slowZero, func(f *blocktest.Fake) block.Driver {
			return &broken{Fake: f, writeZeroes: func(off, n int64, flags block.Flags) error {
				return f.WriteZeroes(off, n, flags|block.NoFallback)
			}}
		}},
		{"discard without Caps.Discard zeroes", full, func(f *blocktest.Fake) block.Driver {
			return &broken{Fake: f, caps: func() block.Caps {
				c := blocktest.FullCaps
				c.Discard, c.DiscardZeroes = false, false
				return c
			}}
		}},
		{"straddling write stores the part in range", full, func(f *blocktest.Fake) block.Driver {
			return &broken{Fake: f, pwrite: func(p []byte, off int64, flags block.Flags) error {
				if off >= 0 && off < f.Size() && off+int64(len(p)) > f.Size() {
					_ = f.Pwrite(p[:f.Size()-off], off, flags)
				}
				return f.Pwrite(p, off, flags)
			}}
		}},
		{"out-of-range write-zeroes is not an error", full, func(f *blocktest.Fake) block.Driver {
			return &broken{Fake: f, writeZeroes: func(off, n int64, flags block.Flags) error {
				if block.CheckRange(off, n, f.Size()) != nil {
					return nil
				}
				return f.WriteZeroes(off, n, flags)
			}}
		}},
		{"keeps the caller's write buffer", full, func(f *blocktest.Fake) block.Driver {
			type pending struct {
				p   []byte
				off int64
			}
			var last *pending
			return &broken{Fake: f, pwrite: func(p []byte, off int64, flags block.Flags) error {
				// A write-back cache that stores the slice, not a copy.
				if last != nil {
					if err := f.Pwrite(last.p, last.off, 0); err != nil {
						return err
					}
				}
				if err := f.Pwrite(p, off, flags); err != nil {
					return err
				}
				last = &pending{p, off}
				return nil
			}}
		}},
		{"loses writes to the short last granule", odd, func(f *blocktest.Fake) block.Driver {
			return &broken{Fake: f, pwrite: func(p []byte, off int64, flags block.Flags) error {
				tail := f.Size() - f.Size()%4096
				if off+int64(len(p)) > tail && off < tail {
					return f.Pwrite(p[:tail-off], off, flags)
				}
				if off >= tail {
					return block.CheckRange(off, int64(len(p)), f.Size())
				}
				return f.Pwrite(p, off, flags)
			}}
		}},
	}
}

// TestCheckCatchesBugs is the test of the tester: every injected bug must
// make Check fail. A random suite catches a bug like "drops one write in
// 50" with high probability, not certainty (the lost write may be
// overwritten before anything reads it), so of the fixed seeds below one
// may miss; more is a weakness of the suite.
func TestCheckCatchesBugs(t *testing.T) {
	seeds := []int64{1, 2, 3, 4, 5}
	for _, b := range bugs() {
		t.Run(strings.ReplaceAll(b.name, " ", "_"), func(t *testing.T) {
			t.Parallel()
			missed := 0
			for _, seed := range seeds {
				d := b.wrap(blocktest.NewFake(b.fake))
				_, err := blocktest.Check(d, blocktest.Options{Seed: seed}, nil)
				if err == nil {
					t.Logf("seed %d: missed", seed)
					missed++
					continue
				}
				var f *blocktest.Failure
				if !errors.As(err, &f) {
					t.Errorf("seed %d: error is not a *Failure: %v", seed, err)
					continue
				}
				if f.Seed != seed || !strings.Contains(err.Error(), "THINBLK_SEED=") {
					t.Errorf("seed %d: failure does not say how to replay: %v", seed, err)
				}
				t.Logf("seed %d: caught: %s: %v", seed, f.Op, f.Err)
			}
			if missed > 1 {
				t.Errorf("Check passed a node that %s for %d of %d seeds", b.name, missed, len(seeds))
			}
		})
	}
}

// TestCheckDeterministic: the same seed finds the same failure at the same
// step.
func TestCheckDeterministic(t *testing.T) {
	b := bugs()[0]
	var steps [2]int
	var ops [2]string
	for i := range steps {
		_, err := blocktest.Check(b.wrap(blocktest.NewFake(b.fake)), blocktest.Options{Seed: 42}, nil)
		var f *blocktest.Failure
		if !errors.As(err, &f) {
			t.Fatalf("run %d: want a *Failure, got %v", i, err)
		}
		steps[i], ops[i] = f.Step, f.Op
	}
	if steps[0] != steps[1] || ops[0] != ops[1] {
		t.Fatalf("same seed, different failures: step %d %q vs step %d %q", steps[0], ops[0], steps[1], ops[1])
	}
}

// TestCheckRejectsBadOptions: an alignment the node cannot take is a setup
// error, not a silent pass.
func TestCheckRejectsBadOptions(t *testing.T) {
	f := blocktest.NewFake(blocktest.FakeOptions{Size: mib, Caps: blocktest.FullCaps,
		Limits: block.Limits{RequestAlign: 4096}})
	if _, err := blocktest.Check(f, blocktest.Options{Seed: 1, Align: 512}, nil); err == nil {
		t.Fatal("Align 512 on a node with RequestAlign 4096 passed")
	}
	bad := blocktest.FullCaps
	bad.Discard = false
	g := blocktest.NewFake(blocktest.FakeOptions{Size: mib, Caps: bad})
	if _, err := blocktest.Check(g, blocktest.Options{Seed: 1}, nil); err == nil {
		t.Fatal("DiscardZeroes without Discard passed")
	}
}

// TestTinyNodes: the generators cope with nodes of a few bytes or blocks.
func TestTinyNodes(t *testing.T) {
	for _, tc := range []struct{ size, align int64 }{{1, 1}, {7, 1}, {512, 512}, {1536, 512}, {4096 + 100, 4096}, {64 << 10, 1}} {
		t.Run(fmt.Sprintf("size%d-align%d", tc.size, tc.align), func(t *testing.T) {
			blocktest.Run(t, func(t *testing.T, size int64) block.Driver {
				return blocktest.NewFake(blocktest.FakeOptions{Size: size, Caps: blocktest.FullCaps, Granule: 512,
					Limits: block.Limits{RequestAlign: tc.align}})
			}, blocktest.Options{Size: tc.size, Ops: 200, Concurrent: true, Reopen: reopenFake})
		})
	}
}

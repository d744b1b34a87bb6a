package blocktest_test

import (
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/block/blocktest"
	"github.com/thinblk/thinblk/protocol/mem"
)

// TestMem runs the suite on protocol/mem (its own package runs it too; this
// one keeps the suite honest against a real driver).
func TestMem(t *testing.T) {
	blocktest.Run(t, func(t *testing.T, size int64) block.Driver {
		return mem.New(size)
	}, blocktest.Options{Concurrent: true})
}

// TestMemAligned runs it through block.Align over a fake that needs 4 KiB
// requests, with mem providing the backing content.
func TestMemOverlay(t *testing.T) {
	backing := mem.New(2 << 20)
	p := make([]byte, 64<<10)
	for i := range p {
		p[i] = byte(i*7 + 1)
	}
	initial := make([]byte, 4<<20)
	for _, off := range []int64{0, 512 << 10, 1<<20 + 4096} {
		if err := backing.Pwrite(p, off, 0); err != nil {
			t.Fatal(err)
		}
		copy(initial[off:], p)
	}
	blocktest.Run(t, func(t *testing.T, size int64) block.Driver {
		return blocktest.NewFake(blocktest.FakeOptions{Size: size, Caps: blocktest.FullCaps,
			Limits: block.Limits{RequestAlign: 4096}, Backing: backing})
	}, blocktest.Options{Initial: initial})
}

package blocktest_test

import (
	"fmt"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/block/blocktest"
)

// Check is the core of Run, usable outside a test: here it finds a node
// that silently ignores discards although it claims they zero.
func ExampleCheck() {
	lying := blocktest.FullCaps
	f := blocktest.NewFake(blocktest.FakeOptions{Size: 1 << 20, Caps: lying})
	_, err := blocktest.Check(&ignoresDiscard{f}, blocktest.Options{Seed: 1}, nil)
	fmt.Println(err != nil)
	// Output: true
}

type ignoresDiscard struct{ *blocktest.Fake }

func (ignoresDiscard) Discard(off, n int64, flags block.Flags) error { return nil }

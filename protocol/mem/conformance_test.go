package mem_test

import (
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/block/blocktest"
	"github.com/thinblk/thinblk/protocol/mem"
)

// TestConformance runs the suite on a fixed-size node. (A growable node
// accepts writes past its end by design, which the suite counts as a bug; its
// growth is tested in mem_test.go.)
func TestConformance(t *testing.T) {
	open := func(t *testing.T, size int64) block.Driver { return mem.New(size) }
	blocktest.Run(t, open, blocktest.Options{Size: 4<<20 + 4567, Concurrent: true})
}

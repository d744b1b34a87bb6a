package vpc

import (
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/block/blocktest"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/protocol/mem"
)

// TestBlocktestFixed runs the conformance suite on a fixed image over a
// mem node, with a reopen that checks the footer survived.
func TestBlocktestFixed(t *testing.T) {
	var node *mem.Node
	open := func() (block.Driver, error) { return Open(node, image.FormatOpen{Name: "mem.vhd"}) }
	blocktest.Run(t, func(t *testing.T, size int64) block.Driver {
		node = mem.NewGrowable(0)
		if err := CreateOn(node, image.CreateOptions{Size: size, Options: map[string]string{"force_size": "on"}}); err != nil {
			t.Fatal(err)
		}
		d, err := open()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}, blocktest.Options{Size: 4 << 20, Ops: 300, Concurrent: true, Reopen: func(block.Driver) (block.Driver, error) { return open() }})
}

// TestBlocktestDynamic runs the suite on a dynamic image (allocating
// writes, concurrent writers, reopen after flush).
func TestBlocktestDynamic(t *testing.T) {
	var node *mem.Node
	open := func() (block.Driver, error) { return Open(node, image.FormatOpen{Name: "mem.vhd"}) }
	blocktest.Run(t, func(t *testing.T, size int64) block.Driver {
		node = mem.NewGrowable(0)
		if err := CreateOn(node, image.CreateOptions{Size: size, Options: map[string]string{"subformat": "dynamic", "force_size": "on"}}); err != nil {
			t.Fatal(err)
		}
		d, err := open()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}, blocktest.Options{Size: 9<<20 + 512, Ops: 300, Concurrent: true, Reopen: func(block.Driver) (block.Driver, error) { return open() }})
}

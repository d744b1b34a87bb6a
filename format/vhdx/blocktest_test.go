package vhdx

import (
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/block/blocktest"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/protocol/mem"
)

// TestBlocktest runs the conformance suite (random reads, writes, zeroes,
// discards, block status, concurrent disjoint writers, reopen) on dynamic
// and fixed images over a growable mem node.
func TestBlocktest(t *testing.T) {
	for _, opts := range []map[string]string{
		{"block_size": "1M"},
		{"subformat": "fixed", "block_size": "1M"},
	} {
		t.Run(opts["subformat"], func(t *testing.T) {
			var node *mem.Node
			open := func() (block.Driver, error) { return Open(node, image.FormatOpen{Name: "mem.vhdx"}) }
			blocktest.Run(t, func(t *testing.T, size int64) block.Driver {
				node = mem.NewGrowable(0)
				if err := CreateOn(node, image.CreateOptions{Size: size, Options: opts}); err != nil {
					t.Fatal(err)
				}
				d, err := open()
				if err != nil {
					t.Fatal(err)
				}
				return d
			}, blocktest.Options{Size: 6<<20 + 512, Ops: 300, Concurrent: true, Reopen: func(d block.Driver) (block.Driver, error) {
				// Close would close the mem node; reopen over the same bytes.
				return open()
			}})
		})
	}
}

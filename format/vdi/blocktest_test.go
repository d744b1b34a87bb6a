package vdi

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/block/blocktest"
	"github.com/thinblk/thinblk/image"
)

// TestBlocktest runs the block layer conformance suite (random operations
// against a model, concurrent phase, reopen) on dynamic and static images
// with small blocks, so that allocation runs often.
func TestBlocktest(t *testing.T) {
	for _, opts := range []map[string]string{
		{"block_size": "65536"},
		{"block_size": "4096", "static": "on"},
		{},
	} {
		t.Run(fmt.Sprint(opts), func(t *testing.T) {
			var name string
			open := func(t *testing.T, size int64) block.Driver {
				name = filepath.Join(t.TempDir(), "b.vdi")
				if err := image.Create(name, "vdi", image.CreateOptions{Size: size, Options: opts}); err != nil {
					t.Fatal(err)
				}
				d, err := image.Open(name, image.Options{Format: "vdi"})
				if err != nil {
					t.Fatal(err)
				}
				return d
			}
			blocktest.Run(t, open, blocktest.Options{
				Size: 3<<20 + 512, Ops: 300, Concurrent: true,
				Reopen: func(d block.Driver) (block.Driver, error) {
					if err := d.Close(); err != nil {
						return nil, err
					}
					return image.Open(name, image.Options{Format: "vdi"})
				},
			})
		})
	}
}

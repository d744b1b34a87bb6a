package qcow2

import (
	"fmt"
	"math/rand"
	"path/filepath"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/block/blocktest"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/protocol/mem"
)

// newMemImage formats a qcow2 image on a growable mem node and opens it.
func newMemImage(t testing.TB, size int64, opts map[string]string, backing block.Driver) *Image {
	t.Helper()
	node := mem.NewGrowable(0)
	co := image.CreateOptions{Size: size, Options: opts}
	if backing != nil {
		co.Backing, co.BackingFormat = "backing", "raw"
	}
	if err := CreateOn(node, co); err != nil {
		t.Fatalf("create: %v", err)
	}
	fo := image.FormatOpen{Name: "mem.qcow2", OpenBacking: func(string, string) (block.Driver, error) { return backing, nil }}
	img, err := Open(node, fo)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return img
}

var blocktestConfigs = []map[string]string{
	{},
	{"cluster_size": "4096", "refcount_bits": "1"},
	{"compat": "0.10", "cluster_size": "16384"},
	{"extended_l2": "on", "cluster_size": "32768", "refcount_bits": "64"},
	{"cluster_size": "2M"},
}

func TestBlocktestMem(t *testing.T) {
	for _, opts := range blocktestConfigs {
		for _, withBacking := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v-backing=%v", opts, withBacking), func(t *testing.T) {
				var initial []byte
				o := blocktest.Options{Size: 4<<20 + 1536, Ops: 300, Concurrent: true}
				blocktest.Run(t, func(t *testing.T, size int64) block.Driver {
					var backing block.Driver
					if withBacking {
						m := mem.New(size - 4096) // shorter than the overlay
						initial = make([]byte, size-4096)
						rand.New(rand.NewSource(int64(size))).Read(initial[:size/2])
						if err := m.Pwrite(initial, 0, 0); err != nil {
							t.Fatal(err)
						}
						backing = m
					}
					return newMemImage(t, size, opts, backing)
				}, withInitial(o, initial, withBacking))
			})
		}
	}
}

// withInitial fills in the backing content lazily (open runs first).
func withInitial(o blocktest.Options, initial []byte, on bool) blocktest.Options {
	if on {
		o.Initial = make([]byte, o.Size-4096)
		rand.New(rand.NewSource(o.Size)).Read(o.Initial[:o.Size/2])
	}
	_ = initial
	return o
}

func TestBlocktestFile(t *testing.T) {
	for _, withBacking := range []bool{false, true} {
		t.Run(fmt.Sprintf("backing=%v", withBacking), func(t *testing.T) {
			dir := t.TempDir()
			size := int64(4 << 20)
			o := blocktest.Options{Size: size, Ops: 300, Concurrent: true}
			name := filepath.Join(dir, "img.qcow2")
			co := image.CreateOptions{Size: size, Options: map[string]string{"cluster_size": "65536"}}
			if withBacking {
				base := filepath.Join(dir, "base.raw")
				if err := image.Create(base, "raw", image.CreateOptions{Size: size}); err != nil {
					t.Fatal(err)
				}
				bd := openPath(t, base, false)
				o.Initial = make([]byte, size)
				rand.New(rand.NewSource(7)).Read(o.Initial[size/4 : size/2])
				if err := bd.Pwrite(o.Initial, 0, 0); err != nil {
					t.Fatal(err)
				}
				bd.Close()
				co.Backing, co.BackingFormat = "base.raw", "raw"
			}
			if err := image.Create(name, "qcow2", co); err != nil {
				t.Fatal(err)
			}
			o.Reopen = func(d block.Driver) (block.Driver, error) {
				if err := d.Close(); err != nil {
					return nil, err
				}
				return image.Open(name, image.Options{})
			}
			blocktest.Run(t, func(t *testing.T, size int64) block.Driver {
				return openPath(t, name, false)
			}, o)
			mustBeClean(t, name)
		})
	}
}

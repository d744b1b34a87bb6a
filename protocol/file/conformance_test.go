package file_test

import (
	"path/filepath"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/block/blocktest"
	"github.com/thinblk/thinblk/internal/testutil"
	"github.com/thinblk/thinblk/protocol/file"
)

// openFile returns an opener of fresh sparse files with options o, and a
// Reopen that opens the same file again.
func openFile(o file.Options) (func(t *testing.T, size int64) block.Driver, func(block.Driver) (block.Driver, error)) {
	open := func(t *testing.T, size int64) block.Driver {
		name := filepath.Join(t.TempDir(), "disk.raw")
		if err := file.Create(name, size, file.PreallocOff); err != nil {
			t.Fatal(err)
		}
		n, err := file.Open(name, o)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	reopen := func(d block.Driver) (block.Driver, error) {
		name := d.(*file.Node).Name()
		if err := d.Close(); err != nil {
			return nil, err
		}
		return file.Open(name, o)
	}
	return open, reopen
}

func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    file.Options
	}{
		{"discard", file.Options{Discard: true}},
		{"nodiscard", file.Options{}},
		{"direct", file.Options{Discard: true, Direct: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			open, reopen := openFile(tc.o)
			blocktest.Run(t, open, blocktest.Options{Size: 4<<20 + 1000, Concurrent: true, Reopen: reopen})
		})
	}
}

// TestConformanceLoop runs the suite on a loop device over a sparse file,
// buffered and with O_DIRECT.
func TestConformanceLoop(t *testing.T) {
	for _, direct := range []bool{false, true} {
		name := "buffered"
		if direct {
			name = "direct"
		}
		t.Run(name, func(t *testing.T) {
			o := file.Options{Discard: true, Direct: direct}
			open := func(t *testing.T, size int64) block.Driver {
				backing := filepath.Join(t.TempDir(), "loop.img")
				if err := file.Create(backing, size, file.PreallocOff); err != nil {
					t.Fatal(err)
				}
				dev := testutil.LoopDevice(t, backing)
				n, err := file.Open(dev, o)
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
			reopen := func(d block.Driver) (block.Driver, error) {
				name := d.(*file.Node).Name()
				if err := d.Close(); err != nil {
					return nil, err
				}
				return file.Open(name, o)
			}
			blocktest.Run(t, open, blocktest.Options{Size: 4 << 20, Concurrent: true, Reopen: reopen})
		})
	}
}

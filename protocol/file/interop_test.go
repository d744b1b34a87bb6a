//go:build linux

package file

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/internal/testutil"
)

// qemuExtent is one entry of `qemu-img map --output=json`.
type qemuExtent struct {
	Start   int64  `json:"start"`
	Length  int64  `json:"length"`
	Depth   int    `json:"depth"`
	Present bool   `json:"present"`
	Zero    bool   `json:"zero"`
	Data    bool   `json:"data"`
	Offset  *int64 `json:"offset"`
}

func (e qemuExtent) String() string {
	off := "none"
	if e.Offset != nil {
		off = fmt.Sprint(*e.Offset)
	}
	return fmt.Sprintf("{%d+%d present=%v zero=%v data=%v offset=%s}", e.Start, e.Length, e.Present, e.Zero, e.Data, off)
}

// qemuMap runs qemu-img map on a raw file and clips the answer to size:
// qemu rounds a raw file's size up to a multiple of 512 and reports the
// rounded tail as zero, which is not part of our node.
func qemuMap(t *testing.T, name string, size int64) []qemuExtent {
	t.Helper()
	out, stderr, code := testutil.Run(t, "qemu-img", "map", "--output=json", "-f", "raw", name)
	if code != 0 {
		t.Fatalf("qemu-img map: exit %d: %s", code, stderr)
	}
	var all, clipped []qemuExtent
	if err := json.Unmarshal([]byte(out), &all); err != nil {
		t.Fatalf("qemu-img map output %q: %v", out, err)
	}
	for _, e := range all {
		if e.Start >= size {
			continue
		}
		e.Length = min(e.Length, size-e.Start)
		clipped = append(clipped, e)
	}
	return clipped
}

// ourMap is BlockStatus over the whole file in qemu-img map's terms, with
// adjacent runs of equal kind merged as qemu-img does.
func ourMap(t *testing.T, n *Node) []qemuExtent {
	t.Helper()
	var out []qemuExtent
	for _, e := range extents(t, n) {
		host := e.HostOffset
		q := qemuExtent{Start: e.Off, Length: e.Len, Present: e.Status.Present(),
			Zero: e.Status&block.Zero != 0, Data: e.Status&block.Data != 0, Offset: &host}
		if k := len(out); k > 0 {
			p := out[k-1]
			if p.Zero == q.Zero && p.Data == q.Data && p.Present == q.Present && *p.Offset+p.Length == host {
				out[k-1].Length += q.Length
				continue
			}
		}
		out = append(out, q)
	}
	return out
}

// settle makes the file's extent state independent of the page cache:
// SEEK_DATA reports unwritten (fallocated, zero-ranged) extents that have
// up-to-date cached pages as data, so both tools must see the same cache.
func settle(t *testing.T, f *os.File) {
	t.Helper()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
}

func compareWithQemu(t *testing.T, name string) {
	t.Helper()
	n, err := Open(name, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if n.Size() == 0 {
		return // qemu-img prints a lone "present": false entry; nothing to compare
	}
	theirs := qemuMap(t, name, n.Size())
	ours := ourMap(t, n)
	if len(theirs) != len(ours) {
		t.Fatalf("%s: %d extents, qemu-img has %d\nours:   %v\nqemu:   %v", name, len(ours), len(theirs), ours, theirs)
	}
	for i := range ours {
		a, b := ours[i], theirs[i]
		if a.Start != b.Start || a.Length != b.Length || a.Present != b.Present || a.Zero != b.Zero ||
			a.Data != b.Data || b.Offset == nil || *a.Offset != *b.Offset {
			t.Fatalf("%s: extent %d is %v, qemu-img says %v\nours:   %v\nqemu:   %v", name, i, a, b, ours, theirs)
		}
	}
	// Allocation agrees with qemu-img info's actual-size.
	out, stderr, code := testutil.Run(t, "qemu-img", "info", "--output=json", "-f", "raw", name)
	if code != 0 {
		t.Fatalf("qemu-img info: %s", stderr)
	}
	var qi struct {
		ActualSize int64 `json:"actual-size"`
	}
	if err := json.Unmarshal([]byte(out), &qi); err != nil {
		t.Fatal(err)
	}
	info, err := n.Info()
	if err != nil {
		t.Fatal(err)
	}
	if info.AllocatedBytes != qi.ActualSize {
		t.Errorf("%s: AllocatedBytes %d, qemu-img actual-size %d", name, info.AllocatedBytes, qi.ActualSize)
	}
}

// build creates a file of size bytes and applies edits to it, then
// settles it.
func build(t *testing.T, name string, size int64, edit func(f *os.File)) {
	t.Helper()
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	edit(f)
	settle(t, f)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestMapMatchesQemuImg(t *testing.T) {
	testutil.NeedTool(t, "qemu-img")
	dir := t.TempDir()
	random := pattern(1<<20, 11)
	cases := []struct {
		name string
		size int64
		edit func(f *os.File)
	}{
		{"hole-odd-size", 1000000, func(f *os.File) {}},
		{"data-at-odd-tail", 1000000, func(f *os.File) {
			_, err := f.WriteAt([]byte("xyz"), 999990)
			must(t, err)
		}},
		{"tiny", 5, func(f *os.File) {
			_, err := f.WriteAt([]byte("hello"), 0)
			must(t, err)
		}},
		{"all-data", 3<<20 + 17, func(f *os.File) {
			_, err := f.WriteAt(make([]byte, 3<<20+17), 0) // written zeros are data
			must(t, err)
		}},
		{"fallocated", 4 << 20, func(f *os.File) {
			must(t, allocate(f, 1<<20, 2<<20))
			_, err := f.WriteAt(random[:5000], 1<<20+7000)
			must(t, err)
		}},
		{"zero-range-and-punch", 4 << 20, func(f *os.File) {
			_, err := f.WriteAt(random, 0)
			must(t, err)
			_, err = f.WriteAt(random, 3<<20)
			must(t, err)
			must(t, f.Sync())
			must(t, zeroRange(f, 100<<10, 300<<10))
			must(t, punchHole(f, 3<<20+4096, 8192))
			must(t, punchHole(f, 3<<20+20000, 100)) // inside a block: zeroed, stays data
		}},
		{"fallocated-past-eof", 1 << 20, func(f *os.File) {
			must(t, fallocate(f, unix.FALLOC_FL_KEEP_SIZE, 512<<10, 1<<20))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := filepath.Join(dir, tc.name)
			build(t, name, tc.size, tc.edit)
			compareWithQemu(t, name)
		})
	}

	// Random layouts: data, written zeros, fallocated ranges, holes and
	// odd sizes.
	rng := rand.New(rand.NewPCG(uint64(testutil.Seed(t)), 3))
	for i := range 12 {
		name := filepath.Join(dir, fmt.Sprintf("random-%d", i))
		size := rng.Int64N(8<<20) + 1
		if rng.IntN(2) == 0 {
			size = size &^ 4095
			size = max(size, 4096)
		}
		build(t, name, size, func(f *os.File) {
			for range rng.IntN(40) + 1 {
				off := rng.Int64N(size)
				if rng.IntN(3) == 0 {
					off &^= 65535
				}
				n := min(rng.Int64N(512<<10)+1, size-off)
				var err error
				switch rng.IntN(5) {
				case 0, 1:
					_, err = f.WriteAt(random[:min(n, int64(len(random)))], off)
				case 2:
					_, err = f.WriteAt(make([]byte, n), off)
				case 3:
					err = fallocate(f, unix.FALLOC_FL_KEEP_SIZE, off, n)
				case 4:
					err = punchHole(f, off, n)
				}
				must(t, err)
			}
		})
		compareWithQemu(t, name)
	}
}

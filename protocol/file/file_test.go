package file

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/internal/testutil"
)

// newFile creates a sparse file of size bytes in a test folder and opens it.
func newFile(t *testing.T, size int64, o Options) (*Node, string) {
	t.Helper()
	name := filepath.Join(t.TempDir(), "disk.raw")
	if err := Create(name, size, PreallocOff); err != nil {
		t.Fatal(err)
	}
	n, err := Open(name, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n, name
}

func pattern(n int, seed byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = seed + byte(i%251) + 1
		if p[i] == 0 {
			p[i] = 1
		}
	}
	return p
}

// extents returns BlockStatus over the whole node, checking that the runs
// tile it.
func extents(t *testing.T, d block.Driver) []block.Extent {
	t.Helper()
	var out []block.Extent
	size := d.Size()
	for off := int64(0); off < size; {
		e, err := d.BlockStatus(off, size-off)
		if err != nil {
			t.Fatalf("BlockStatus(%d): %v", off, err)
		}
		if e.Off != off || e.Len <= 0 || e.End() > size {
			t.Fatalf("BlockStatus(%d, %d) = %+v", off, size-off, e)
		}
		if n := len(out); n > 0 && out[n-1].Status == e.Status {
			out[n-1].Len += e.Len
		} else {
			out = append(out, e)
		}
		off = e.End()
	}
	return out
}

func TestReadWriteRanges(t *testing.T) {
	n, name := newFile(t, 1<<20+100, Options{})
	p := pattern(5000, 3)
	if err := n.Pwrite(p, 1<<20+100-5000, block.FUA); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(p))
	if err := n.Pread(got, 1<<20+100-5000); err != nil || !bytes.Equal(got, p) {
		t.Fatalf("read back: %v", err)
	}
	for _, off := range []int64{-1, 1<<20 + 100 - 4999, 1 << 62} {
		if err := n.Pread(got, off); !errors.Is(err, block.ErrOutOfRange) {
			t.Errorf("Pread at %d: %v", off, err)
		}
		if err := n.Pwrite(got, off, 0); !errors.Is(err, block.ErrOutOfRange) {
			t.Errorf("Pwrite at %d: %v", off, err)
		}
	}
	var oe *block.OpError
	if err := n.Pread(got, -1); !errors.As(err, &oe) || oe.Node != name || oe.Op != "pread" {
		t.Errorf("error %v: want an OpError naming the file", err)
	}
	if fi, _ := os.Stat(name); fi.Size() != 1<<20+100 {
		t.Errorf("file size changed to %d", fi.Size())
	}
	ro, err := Open(name, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if err := ro.Pwrite(p, 0, 0); !errors.Is(err, block.ErrReadOnly) {
		t.Errorf("write to read-only: %v", err)
	}
	if err := ro.WriteZeroes(0, 10, 0); !errors.Is(err, block.ErrReadOnly) {
		t.Errorf("write-zeroes to read-only: %v", err)
	}
	if err := ro.Discard(0, 10, 0); !errors.Is(err, block.ErrReadOnly) {
		t.Errorf("discard on read-only: %v", err)
	}
	if ro.Caps().Write || ro.Caps().Discard {
		t.Errorf("read-only caps %+v", ro.Caps())
	}
	if err := ro.Pread(got, 1<<20+100-5000); err != nil || !bytes.Equal(got, p) {
		t.Errorf("read-only read: %v", err)
	}
	n.Close()
	if err := n.Pread(got, 0); !errors.Is(err, block.ErrClosed) {
		t.Errorf("read after close: %v", err)
	}
}

func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir, Options{}); !errors.Is(err, block.ErrInvalid) {
		t.Errorf("directory: %v", err)
	}
	if _, err := Open(filepath.Join(dir, "missing"), Options{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := Open("/dev/null", Options{}); !errors.Is(err, block.ErrInvalid) {
		t.Errorf("character device: %v", err)
	}
	if err := Create(filepath.Join(dir, "x"), 10, "sparse"); !errors.Is(err, block.ErrInvalid) || !bytes.Contains([]byte(err.Error()), []byte("sparse")) {
		t.Errorf("bad preallocation: %v", err)
	}
}

func TestDiscardAndZeroes(t *testing.T) {
	const mib = 1 << 20
	n, name := newFile(t, 8*mib, Options{Discard: true})
	if err := n.Pwrite(pattern(8*mib, 1), 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := n.Flush(); err != nil {
		t.Fatal(err)
	}
	full := testutil.HostBytes(t, name)
	if full < 8*mib {
		t.Fatalf("written file has %d bytes allocated", full)
	}
	// Discard punches: allocation drops and the range reads zero.
	if err := n.Discard(1*mib, mib, 0); err != nil {
		t.Fatal(err)
	}
	// Write-zeroes with unmap punches too.
	if err := n.WriteZeroes(3*mib, mib, block.MayUnmap|block.NoFallback); err != nil {
		t.Fatal(err)
	}
	// Without unmap the range stays allocated.
	if err := n.WriteZeroes(5*mib, mib, block.NoFallback|block.FUA); err != nil {
		t.Fatal(err)
	}
	// Unaligned edges are zeroed exactly.
	if err := n.WriteZeroes(7*mib+100, 1000, block.MayUnmap); err != nil {
		t.Fatal(err)
	}
	// Punching may add an extent-tree block or so.
	if got := testutil.HostBytes(t, name); got < full-2*mib || got > full-2*mib+64<<10 {
		t.Errorf("allocated %d after punching 2 MiB of %d", got, full)
	}
	// SEEK_DATA shows the punched and the zeroed (unwritten) ranges as
	// holes; FIEMAP tells the zeroed one, which keeps its storage, apart:
	// anchored (Zero|Allocated). This must run before the range is read:
	// ext4 and xfs report unwritten extents with up-to-date page cache
	// pages as data.
	wantExt := []block.Extent{
		{Off: 0, Len: mib, Status: block.Data | block.Allocated},
		{Off: mib, Len: mib, Status: block.Zero},
		{Off: 2 * mib, Len: mib, Status: block.Data | block.Allocated},
		{Off: 3 * mib, Len: mib, Status: block.Zero},
		{Off: 4 * mib, Len: mib, Status: block.Data | block.Allocated},
		{Off: 5 * mib, Len: mib, Status: block.Zero | block.Allocated},
		{Off: 6 * mib, Len: 2 * mib, Status: block.Data | block.Allocated},
	}
	ext := extents(t, n)
	if len(ext) != len(wantExt) {
		t.Fatalf("extents %+v", ext)
	}
	for i, e := range ext {
		w := wantExt[i]
		if e.Off != w.Off || e.Len != w.Len || e.Status != w.Status || e.HostOffset != e.Off {
			t.Errorf("extent %d: %+v, want %+v", i, e, w)
		}
	}
	want := pattern(8*mib, 1)
	for _, r := range [][2]int{{mib, 2 * mib}, {3 * mib, 4 * mib}, {5 * mib, 6 * mib}, {7*mib + 100, 7*mib + 1100}} {
		clear(want[r[0]:r[1]])
	}
	got := make([]byte, 8*mib)
	if err := n.Pread(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("contents after discard/write-zeroes differ")
	}
	c := n.Caps()
	if !c.Discard || !c.DiscardZeroes || !c.ZeroUnmap || !c.WriteZeroes || !c.BlockStatus {
		t.Errorf("caps %+v", c)
	}
	info, err := n.Info()
	if err != nil {
		t.Fatal(err)
	}
	if info.Format != "file" || info.AllocatedBytes != testutil.HostBytes(t, name) || info.Watermark != 8*mib || info.VirtualSize != 8*mib {
		t.Errorf("info %+v", info)
	}
}

func TestDiscardOff(t *testing.T) {
	n, name := newFile(t, 1<<20, Options{})
	p := pattern(1<<20, 9)
	if err := n.Pwrite(p, 0, 0); err != nil {
		t.Fatal(err)
	}
	before := testutil.HostBytes(t, name)
	if err := n.Discard(0, 1<<20, 0); err != nil {
		t.Fatal(err)
	}
	// MayUnmap is ignored: zeros, but no hole.
	if err := n.WriteZeroes(0, 1<<19, block.MayUnmap); err != nil {
		t.Fatal(err)
	}
	if got := testutil.HostBytes(t, name); got != before {
		t.Errorf("allocation changed from %d to %d with discard off", before, got)
	}
	got := make([]byte, 1<<20)
	if err := n.Pread(got, 0); err != nil {
		t.Fatal(err)
	}
	clear(p[:1<<19])
	if !bytes.Equal(got, p) {
		t.Error("discard with discard off changed data, or write-zeroes did not zero")
	}
	if c := n.Caps(); c.Discard || c.DiscardZeroes || c.ZeroUnmap {
		t.Errorf("caps with discard off %+v", c)
	}
}

func TestGrowableAndTruncate(t *testing.T) {
	n, name := newFile(t, 4096, Options{Growable: true})
	p := pattern(10000, 5)
	if err := n.Pwrite(p, 65536, 0); err != nil {
		t.Fatal(err)
	}
	if n.Size() != 65536+10000 {
		t.Fatalf("size %d after growing write", n.Size())
	}
	if fi, _ := os.Stat(name); fi.Size() != n.Size() {
		t.Fatalf("file size %d, node %d", fi.Size(), n.Size())
	}
	got := make([]byte, 10000)
	if err := n.Pread(got, 65536); err != nil || !bytes.Equal(got, p) {
		t.Fatalf("read grown range: %v", err)
	}
	if err := n.Pread(got, 65537); !errors.Is(err, block.ErrOutOfRange) {
		t.Fatalf("read past grown end: %v", err)
	}
	if err := n.WriteZeroes(65536, 20000, 0); !errors.Is(err, block.ErrOutOfRange) {
		t.Fatalf("write-zeroes past end of growable: %v", err)
	}
	if err := n.Truncate(1000); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(name); fi.Size() != 1000 || n.Size() != 1000 {
		t.Fatalf("after truncate: file %d node %d", fi.Size(), n.Size())
	}
	fixed, _ := newFile(t, 4096, Options{})
	if err := fixed.Pwrite(p, 0, 0); !errors.Is(err, block.ErrOutOfRange) {
		t.Fatalf("write past end of fixed node: %v", err)
	}
}

func TestCreatePrealloc(t *testing.T) {
	const size = 3<<20 + 512
	dir := t.TempDir()
	for _, tc := range []struct {
		mode               string
		minAlloc, maxAlloc int64
		status             block.Status
	}{
		{PreallocOff, 0, 0, block.Zero},
		{PreallocFalloc, size, size + 1<<20, block.Zero | block.Allocated}, // anchored
		{PreallocFull, size, size + 1<<20, block.Data | block.Allocated},
	} {
		name := filepath.Join(dir, tc.mode)
		if err := os.WriteFile(name, pattern(5<<20, 1), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := Create(name, size, tc.mode); err != nil {
			t.Fatal(err)
		}
		if got := testutil.HostBytes(t, name); got < tc.minAlloc || got > tc.maxAlloc {
			t.Errorf("%s: %d bytes allocated, want %d..%d", tc.mode, got, tc.minAlloc, tc.maxAlloc)
		}
		n, err := Open(name, Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		if n.Size() != size {
			t.Errorf("%s: size %d", tc.mode, n.Size())
		}
		if ext := extents(t, n); len(ext) != 1 || ext[0].Status != tc.status {
			t.Errorf("%s: extents %+v", tc.mode, ext)
		}
		buf := make([]byte, size)
		if err := n.Pread(buf, 0); err != nil || !block.IsZero(buf) {
			t.Errorf("%s: not all zeros (%v)", tc.mode, err)
		}
		n.Close()
	}
}

// TestRandomAgainstModel runs random requests on a file and checks reads
// and zero extents against a byte model.
func TestRandomAgainstModel(t *testing.T) {
	for _, direct := range []bool{false, true} {
		name := "buffered"
		if direct {
			name = "direct"
		}
		t.Run(name, func(t *testing.T) {
			seed := testutil.Seed(t)
			rng := rand.New(rand.NewPCG(uint64(seed), 2))
			const size = 4<<20 + 1000
			n, _ := newFile(t, size, Options{Discard: true, Direct: direct})
			model := make([]byte, size)
			pool := make([]byte, 1<<20)
			for j := range pool {
				pool[j] = byte(rng.IntN(256))
			}
			for i := 0; i < 400; i++ {
				off := rng.Int64N(size)
				if rng.IntN(2) == 0 {
					off &^= 4095
				}
				length := min(rng.Int64N(300<<10)+1, size-off)
				if rng.IntN(2) == 0 && length > 4096 {
					length &^= 4095
				}
				switch rng.IntN(5) {
				case 0, 1:
					p := make([]byte, length+1)[1:] // misaligned in memory
					start := rng.Int64N(int64(len(pool)) - length + 1)
					copy(p, pool[start:])
					if err := n.Pwrite(p, off, 0); err != nil {
						t.Fatal(err)
					}
					copy(model[off:], p)
				case 2:
					if err := n.Discard(off, length, 0); err != nil {
						t.Fatal(err)
					}
					clear(model[off : off+length])
				case 3:
					flags := block.Flags(0)
					if rng.IntN(2) == 0 {
						flags |= block.MayUnmap
					}
					if err := n.WriteZeroes(off, length, flags); err != nil {
						t.Fatal(err)
					}
					clear(model[off : off+length])
				case 4:
					p := make([]byte, length+3)[3:]
					if err := n.Pread(p, off); err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(p, model[off:off+length]) {
						t.Fatalf("op %d: read %d+%d differs", i, off, length)
					}
				}
				if i%50 == 0 {
					for _, e := range extents(t, n) {
						if e.Status&block.Zero != 0 && !block.IsZero(model[e.Off:e.End()]) {
							t.Fatalf("op %d: extent %+v says zero, model has data", i, e)
						}
					}
				}
			}
			got := make([]byte, size)
			if err := n.Pread(got, 0); err != nil || !bytes.Equal(got, model) {
				t.Fatalf("final read differs (%v)", err)
			}
		})
	}
}

func TestDirectLimits(t *testing.T) {
	n, _ := newFile(t, 1<<20, Options{Direct: true})
	l := n.Limits()
	if l.RequestAlign < 512 || l.RequestAlign&(l.RequestAlign-1) != 0 {
		t.Errorf("direct RequestAlign %d", l.RequestAlign)
	}
	b, _ := newFile(t, 1<<20, Options{})
	if b.Limits().RequestAlign != 1 {
		t.Errorf("buffered RequestAlign %d", b.Limits().RequestAlign)
	}
}

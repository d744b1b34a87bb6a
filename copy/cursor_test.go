package copy

import (
	"math/rand"
	"sync/atomic"
	"testing"

	"github.com/thinblk/thinblk/block"
)

// statusCounter counts BlockStatus calls on a chain layer.
type statusCounter struct {
	block.Driver
	calls atomic.Int64
}

func (s *statusCounter) Backing() block.Driver { return block.BackingOf(s.Driver) }
func (s *statusCounter) BlockStatus(off, n int64) (block.Extent, error) {
	s.calls.Add(1)
	return s.Driver.BlockStatus(off, n)
}

type granuleStatus struct {
	st    block.Status
	depth int
	host  int64
}

// walk expands a forward walk of [0, size) into per-4K statuses.
func walk(t *testing.T, size int64, status func(off, n int64) (block.Extent, error)) []granuleStatus {
	t.Helper()
	var out []granuleStatus
	for off := int64(0); off < size; {
		e, err := status(off, size-off)
		if err != nil {
			t.Fatal(err)
		}
		if e.Off != off || e.Len <= 0 || e.Len%4096 != 0 {
			t.Fatalf("status at %d: %+v", off, e)
		}
		for g := int64(0); g < e.Len; g += 4096 {
			h := int64(-1)
			if e.HostOffset >= 0 {
				h = e.HostOffset + g
			}
			out = append(out, granuleStatus{e.Status, e.Depth, h})
		}
		off += e.Len
	}
	return out
}

// TestStatusCursorMatchesChainStatus: a forward walk through the cursor
// describes every granule as block.ChainStatus does, over random three-layer
// chains (with and without a base), and asks the top layer less often.
func TestStatusCursorMatchesChainStatus(t *testing.T) {
	s := seed(t)
	r := rand.New(rand.NewSource(s))
	const size = 8 << 20
	for round := range 6 {
		bottom := newFake(size, nil)
		mid := newFake(size-64<<10, bottom) // shorter than the top
		fill(t, r, bottom, nil)
		fill(t, r, mid, nil)
		top := &statusCounter{Driver: newFake(size, mid)}
		// Sparse top: a few extents over mostly unallocated space, the
		// case where ChainStatus repeats work.
		for range 8 {
			off := int64(r.Intn(size/4096)) * 4096
			n := min(int64(1+r.Intn(16))*4096, size-off)
			if err := top.Pwrite(make([]byte, n), off, 0); err != nil {
				t.Fatal(err)
			}
		}
		var base block.Driver
		if round%2 == 1 {
			base = bottom
		}
		top.calls.Store(0)
		want := walk(t, size, func(off, n int64) (block.Extent, error) { return block.ChainStatus(top, off, n, base) })
		plainCalls := top.calls.Load()
		top.calls.Store(0)
		cur := NewStatusCursor(top, base)
		got := walk(t, size, cur.Status)
		cursorCalls := top.calls.Load()
		if len(got) != len(want) {
			t.Fatalf("round %d: %d granules, want %d", round, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("round %d: granule at %d: %+v, ChainStatus says %+v", round, int64(i)*4096, got[i], want[i])
			}
		}
		if cursorCalls > 2*8+1 || cursorCalls >= plainCalls {
			t.Errorf("round %d: the cursor asked the top %d times (ChainStatus: %d); want at most one per top run", round, cursorCalls, plainCalls)
		}
	}
}

package copy

import (
	"context"
	"errors"
	"math/rand"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/thinblk/thinblk/block"
)

// reserving is a counter that takes reservations (block.Preallocator) and
// records, for each Pwrite, whether all its bytes were reserved before.
type reserving struct {
	*counter
	rmu        sync.Mutex
	reserved   []item // Preallocate calls, in order
	unreserved []item // Pwrites with bytes not reserved before them
}

func (r *reserving) Preallocate(off, n int64) error {
	if off < 0 || n <= 0 || off+n > r.Size() {
		return block.ErrOutOfRange
	}
	r.rmu.Lock()
	r.reserved = append(r.reserved, item{off: off, n: n})
	r.rmu.Unlock()
	return nil
}

func (r *reserving) Pwrite(p []byte, off int64, flags block.Flags) error {
	r.rmu.Lock()
	if covered(r.reserved, off, off+int64(len(p))) < int64(len(p)) {
		r.unreserved = append(r.unreserved, item{off: off, n: int64(len(p))})
	}
	r.rmu.Unlock()
	return r.counter.Pwrite(p, off, flags)
}

// covered returns how many bytes of [a, b) the ranges cover (the ranges
// must not overlap each other).
func covered(ranges []item, a, b int64) int64 {
	var n int64
	for _, x := range ranges {
		n += max(0, min(b, x.end())-max(a, x.off))
	}
	return n
}

// overlapping returns two ranges of rs that share a byte, if any.
func overlapping(rs []item) (item, item, bool) {
	s := append([]item(nil), rs...)
	sort.Slice(s, func(i, j int) bool { return s[i].off < s[j].off })
	for i := 1; i < len(s); i++ {
		if s[i].off < s[i-1].end() {
			return s[i-1], s[i], true
		}
	}
	return item{}, item{}, false
}

// TestReservations copies random sources onto a target that takes
// reservations and checks what the reservations promise: every byte
// written with Pwrite was reserved before the write, every reserved byte
// is written, no byte is reserved twice, and the content is right.
func TestReservations(t *testing.T) {
	s := seed(t)
	for i := range 60 {
		r := rand.New(rand.NewSource(s + int64(i)))
		size := int64(1+r.Intn(64)) * 16384
		src := newFake(size, nil)
		fill(t, r, src, nil)
		want := readAll(t, src)
		o := Options{
			Parallel:     1 + r.Intn(8),
			OutOfOrder:   r.Intn(3) == 0,
			RequestSize:  int64(1+r.Intn(8)) * 8192,
			TargetIsZero: r.Intn(2) == 0,
		}
		if r.Intn(4) == 0 {
			o.SparseSize = FullyAllocate
		}
		dst := &reserving{counter: newCounter(newFake(size, nil))}
		if _, err := Run(context.Background(), src, dst, o); err != nil {
			t.Fatalf("case %d (%+v): %v", i, o, err)
		}
		if d := firstDiff(readAll(t, dst), want); d >= 0 {
			t.Fatalf("case %d (%+v): content differs at %d", i, o, d)
		}
		if len(dst.unreserved) > 0 {
			t.Fatalf("case %d (%+v): write %+v was not reserved first (reservations %v)", i, o, dst.unreserved[0], dst.reserved)
		}
		if a, b, ok := overlapping(dst.reserved); ok {
			t.Fatalf("case %d (%+v): reservations %+v and %+v overlap", i, o, a, b)
		}
		var written []item
		for _, w := range dst.writes {
			if w.kind == kindData {
				written = append(written, w)
			}
		}
		for _, x := range dst.reserved {
			if c := covered(written, x.off, x.end()); c != x.n {
				t.Fatalf("case %d (%+v): reserved %+v but wrote only %d bytes of it", i, o, x, c)
			}
		}
	}
}

// TestReservationJoinsRequests: one long data run, cut into many requests,
// is reserved in a few calls, each joining the requests whose scans are
// done, not in one call per request.
func TestReservationJoinsRequests(t *testing.T) {
	const req, items = 64 << 10, 64
	src := newFake(req*items, nil)
	p := make([]byte, req*items)
	rand.New(rand.NewSource(1)).Read(p)
	if err := src.Pwrite(p, 0, 0); err != nil {
		t.Fatal(err)
	}
	for _, par := range []int{3, 4, 8} {
		dst := &reserving{counter: newCounter(newFake(req*items, nil))}
		if _, err := Run(context.Background(), src, dst, Options{Parallel: par, RequestSize: req}); err != nil {
			t.Fatal(err)
		}
		// The writer of item k waits for items k+1..k+par-2 and reserves
		// them with its own: a call per par-1 items at most, plus one.
		if limit := items/(par-1) + 1; len(dst.reserved) > limit {
			t.Errorf("-m %d: %d reservations for %d requests of one run, want at most %d", par, len(dst.reserved), items, limit)
		}
		if c := covered(dst.reserved, 0, req*items); c != req*items {
			t.Errorf("-m %d: reservations cover %d of %d bytes", par, c, req*items)
		}
	}
}

// TestReservationStopsOnError: a read error while writers wait for later
// scans ends the copy with the error instead of hanging.
func TestReservationStopsOnError(t *testing.T) {
	const size = 4 << 20
	for _, par := range []int{2, 4, 8} {
		base := newFake(size, nil)
		p := make([]byte, size)
		rand.New(rand.NewSource(2)).Read(p)
		if err := base.Pwrite(p, 0, 0); err != nil {
			t.Fatal(err)
		}
		src := newCounter(base)
		src.failReadAt = size/2 + 4096
		dst := &reserving{counter: newCounter(newFake(size, nil))}
		done := make(chan error, 1)
		go func() {
			_, err := Run(context.Background(), src, dst, Options{Parallel: par, RequestSize: 64 << 10})
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, errInjected) {
				t.Fatalf("-m %d: got %v, want the injected read error", par, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("-m %d: copy hangs after a read error", par)
		}
	}
}

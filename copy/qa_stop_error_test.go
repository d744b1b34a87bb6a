package copy

import (
	"context"
	"errors"
	"math/rand"
	"testing"
)

// TestFailedWriteIsTheError: when a write fails in in-order mode, the
// error returned is that write's, never errStopped ("copy stopped") from
// the items whose turn then never came, nor the planner's "context
// canceled" after the failure canceled it. (convert onto a full file
// system said only "copy stopped (target is incomplete)": the workers
// woken with errStopped recorded it before the owner of the failed step
// recorded ENOSPC.)
func TestFailedWriteIsTheError(t *testing.T) {
	s := seed(t)
	r := rand.New(rand.NewSource(s))
	const size = 16 << 20
	src := newFake(size, nil)
	p := make([]byte, size)
	r.Read(p)
	if err := src.Pwrite(p, 0, 0); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		dst := newCounter(newFake(size, nil))
		dst.failWriteAt = r.Int63n(size)
		o := Options{TargetIsZero: true, Parallel: 2 + r.Intn(7), RequestSize: int64(1+r.Intn(4)) * 64 << 10}
		_, err := Run(context.Background(), src, dst, o)
		if !errors.Is(err, errInjected) {
			t.Fatalf("case %d (parallel %d, request %d, failing at %d): err %v, want the failed write's error", i, o.Parallel, o.RequestSize, dst.failWriteAt, err)
		}
	}
}

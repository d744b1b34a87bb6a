package block

import (
	"testing"
	"time"
)

func TestRangeLocks(t *testing.T) {
	var l RangeLocks
	unlockA := lockFn(&l, 0, 4096)
	// Disjoint: proceeds at once.
	done := make(chan struct{})
	go func() {
		u := lockFn(&l, 4096, 8192)
		u()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a disjoint range waited")
	}
	// Overlapping: waits for the holder.
	got := make(chan struct{})
	released := make(chan struct{})
	go func() {
		u := lockFn(&l, 4000, 4100)
		close(got)
		u()
		close(released)
	}()
	select {
	case <-got:
		t.Fatal("an overlapping range did not wait")
	case <-time.After(50 * time.Millisecond):
	}
	unlockA()
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter did not get the lock after unlock")
	}
	<-released
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.held) != 0 {
		t.Fatalf("%d ranges still held", len(l.held))
	}
}

// lockFn adapts Lock/Unlock to a release function for the tests.
func lockFn(l *RangeLocks, start, end int64) func() {
	h := l.Lock(start, end)
	return func() { l.Unlock(h) }
}

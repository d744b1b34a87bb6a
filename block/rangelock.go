package block

import "sync"

// rangeLocks serializes holders of overlapping byte ranges. Waiters for a
// range block until every overlapping holder has unlocked; holders of
// disjoint ranges proceed in parallel. It is meant for short critical
// sections with little contention (read-modify-write of partial blocks).
type rangeLocks struct {
	mu   sync.Mutex   // guards held
	held []*heldRange // ranges currently locked
}

type heldRange struct {
	start, end int64
	done       chan struct{} // closed on unlock
}

// lock blocks until [start, end) overlaps no held range, then holds it. The
// caller must call the returned function exactly once to release it.
func (l *rangeLocks) lock(start, end int64) (unlock func()) {
	for {
		l.mu.Lock()
		var busy *heldRange
		for _, h := range l.held {
			if h.start < end && start < h.end {
				busy = h
				break
			}
		}
		if busy == nil {
			h := &heldRange{start: start, end: end, done: make(chan struct{})}
			l.held = append(l.held, h)
			l.mu.Unlock()
			return func() { l.unlock(h) }
		}
		l.mu.Unlock()
		<-busy.done
	}
}

func (l *rangeLocks) unlock(h *heldRange) {
	l.mu.Lock()
	for i, x := range l.held {
		if x == h {
			l.held = append(l.held[:i], l.held[i+1:]...)
			break
		}
	}
	l.mu.Unlock()
	close(h.done)
}

package block

import "sync"

// RangeLocks serializes holders of overlapping ranges [start, end); holders
// of disjoint ranges proceed in parallel. The Driver contract lets mutating
// calls run in parallel only on non-overlapping ranges, so callers that
// accept requests from outside (exports, the alignment wrapper) hold a range
// lock around each mutating call. It is meant for short critical sections
// with little contention. The zero value is ready to use.
type RangeLocks struct {
	mu   sync.Mutex   // guards held
	held []*RangeHold // ranges currently locked
}

// RangeHold is one held range, returned by Lock and given back to Unlock.
type RangeHold struct {
	start, end int64
	done       chan struct{} // closed on unlock
}

// Lock blocks until [start, end) overlaps no held range, then holds it. The
// caller must pass the result to Unlock exactly once.
func (l *RangeLocks) Lock(start, end int64) *RangeHold {
	for {
		l.mu.Lock()
		var busy *RangeHold
		for _, h := range l.held {
			if h.start < end && start < h.end {
				busy = h
				break
			}
		}
		if busy == nil {
			h := &RangeHold{start: start, end: end, done: make(chan struct{})}
			l.held = append(l.held, h)
			l.mu.Unlock()
			return h
		}
		l.mu.Unlock()
		<-busy.done
	}
}

// Unlock releases a range held by Lock and wakes its waiters.
func (l *RangeLocks) Unlock(h *RangeHold) {
	l.mu.Lock()
	for i, x := range l.held {
		if x == h {
			last := len(l.held) - 1
			l.held[i] = l.held[last]
			l.held[last] = nil
			l.held = l.held[:last]
			break
		}
	}
	l.mu.Unlock()
	close(h.done)
}

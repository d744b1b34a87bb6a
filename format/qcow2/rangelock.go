package qcow2

import "sync"

// rangeLock locks ranges of guest clusters, shared (readers) or exclusive
// (writers). A request waits only for requests whose ranges overlap its own
// and conflict; the internal mutex is held only while the table of held
// ranges is checked or changed.
type rangeLock struct {
	mu   sync.Mutex
	cond *sync.Cond
	held map[*heldRange]struct{}
}

type heldRange struct {
	start, end int64 // guest cluster indexes, [start, end)
	exclusive  bool
}

func newRangeLock() *rangeLock {
	l := &rangeLock{held: make(map[*heldRange]struct{})}
	l.cond = sync.NewCond(&l.mu)
	return l
}

// lock blocks until [start, end) can be held and returns the handle for
// unlock.
func (l *rangeLock) lock(start, end int64, exclusive bool) *heldRange {
	r := &heldRange{start: start, end: end, exclusive: exclusive}
	l.mu.Lock()
	for l.conflicts(r) {
		l.cond.Wait()
	}
	l.held[r] = struct{}{}
	l.mu.Unlock()
	return r
}

func (l *rangeLock) conflicts(r *heldRange) bool {
	for h := range l.held {
		if h.start < r.end && r.start < h.end && (h.exclusive || r.exclusive) {
			return true
		}
	}
	return false
}

func (l *rangeLock) unlock(r *heldRange) {
	l.mu.Lock()
	delete(l.held, r)
	l.mu.Unlock()
	l.cond.Broadcast()
}

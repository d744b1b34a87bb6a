package copy

import "sync"

// sequencer runs the write steps of items in seq order (in-order mode).
// A step runs once every earlier step has run, on whichever worker is
// running steps then: the worker whose step is next, finding no one
// writing, runs it and then every step already submitted after it. A run
// of items that are read and scanned ahead is so written back to back by
// one goroutine, instead of each worker waking up in turn (a futex wake
// and a scheduler hand-off per item cost convert ~15% of its time).
//
// submit returns when the item's step has run, or would never run because
// the copy stopped: the caller's buffers are free again either way.
type sequencer struct {
	mu      sync.Mutex
	next    int64           // seq of the step to run next
	running bool            // a worker is running steps
	waiting map[int64]*step // submitted, waiting for earlier ones
	stopped bool            // a step failed or the copy stopped
}

// step is one submitted item's write.
type step struct {
	fn   func() error
	err  error
	done chan struct{} // closed when the step ran or was dropped
}

func newSequencer() *sequencer {
	return &sequencer{waiting: make(map[int64]*step)}
}

// submit runs fn as item seq's step, in seq order, and returns its error
// (errStopped when the copy stopped before its turn). Every item submits
// exactly one step, or the copy stops.
func (q *sequencer) submit(seq int64, fn func() error) error {
	q.mu.Lock()
	if q.stopped {
		q.mu.Unlock()
		return errStopped
	}
	if q.running || seq != q.next {
		s := &step{fn: fn, done: make(chan struct{})}
		q.waiting[seq] = s
		q.mu.Unlock()
		<-s.done
		return s.err
	}
	q.running = true
	own := q.runLocked(fn)
	for !q.stopped {
		s, ok := q.waiting[q.next]
		if !ok {
			break
		}
		delete(q.waiting, q.next)
		s.err = q.runLocked(s.fn)
		close(s.done)
	}
	q.running = false
	q.mu.Unlock()
	return own
}

// runLocked runs step q.next (fn) without the lock and moves on to the
// next; a failure stops the sequence.
// Preconditions: q.mu held; q.running set by the caller.
func (q *sequencer) runLocked(fn func() error) error {
	q.mu.Unlock()
	err := fn()
	q.mu.Lock()
	q.next++
	if err != nil {
		q.stopLocked()
	}
	return err
}

// stop drops every waiting step (their submit returns errStopped) and
// refuses later ones. A step running now finishes.
func (q *sequencer) stop() {
	q.mu.Lock()
	q.stopLocked()
	q.mu.Unlock()
}

func (q *sequencer) stopLocked() {
	q.stopped = true
	for seq, s := range q.waiting {
		s.err = errStopped
		close(s.done)
		delete(q.waiting, seq)
	}
}

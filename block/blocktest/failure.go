package blocktest

import (
	"fmt"
	"strings"
)

// Failure is the error Check returns when the node breaks the contract or
// disagrees with the reference model: the seed, the step, the operation that
// caught it, and the operations before it.
type Failure struct {
	Seed    int64
	Phase   string // "sequential", "concurrent worker 2", "reopen", ...
	Step    int    // index of the operation within its phase
	Op      string // the operation that caught the problem
	Err     error
	History []string // the last operations of that phase, oldest first
}

func (f *Failure) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "blocktest (seed %d) %s step %d: %s: %v", f.Seed, f.Phase, f.Step, f.Op, f.Err)
	if len(f.History) > 0 {
		b.WriteString("\nlast operations:")
		for _, h := range f.History {
			b.WriteString("\n  ")
			b.WriteString(h)
		}
	}
	fmt.Fprintf(&b, "\nreplay with THINBLK_SEED=%d", f.Seed)
	return b.String()
}

func (f *Failure) Unwrap() error { return f.Err }

// history keeps the last few operations of one runner.
type history struct {
	ring []string
	next int
	full bool
}

const historyLen = 24

func (h *history) add(s string) {
	if h.ring == nil {
		h.ring = make([]string, historyLen)
	}
	h.ring[h.next] = s
	h.next = (h.next + 1) % historyLen
	if h.next == 0 {
		h.full = true
	}
}

func (h *history) list() []string {
	if !h.full {
		return append([]string(nil), h.ring[:h.next]...)
	}
	return append(append([]string(nil), h.ring[h.next:]...), h.ring[:h.next]...)
}

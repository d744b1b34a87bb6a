package copy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/thinblk/thinblk/block"
)

// Run copies all of src to dst from offset 0, sparsely. dst must be at
// least as large as src. See the package documentation for what is read
// and written, and Options for the knobs. On error the returned Stats count
// what was done before the copy stopped.
func Run(ctx context.Context, src, dst block.Driver, o Options) (Stats, error) {
	return RunSources(ctx, []Source{{Node: src, Len: src.Size(), Base: o.Base, Name: o.SourceName}}, dst, o)
}

// RunSources copies the sources, laid end to end from target offset 0, to
// dst (convert SRC... DST, dd skip= count=). Options.Base and SourceName
// are ignored: each Source carries its own.
func RunSources(ctx context.Context, srcs []Source, dst block.Driver, o Options) (Stats, error) {
	var st Stats
	for _, s := range srcs {
		if s.Node == nil || s.Off < 0 || s.Len < 0 || s.Len > s.Node.Size()-s.Off {
			return st, fmt.Errorf("copy from %s: %w: range %d+%d", sourceName(s), block.ErrOutOfRange, s.Off, s.Len)
		}
	}
	s, err := resolve(o, srcs, dst)
	if err != nil {
		return st, err
	}
	l := newLayout(srcs)
	if l.total > dst.Size() {
		return st, &block.OpError{Op: "copy", Node: s.targetName, Off: 0, Len: l.total,
			Err: fmt.Errorf("%w: the target (%d bytes) is smaller than the source (%d bytes)", block.ErrOutOfRange, dst.Size(), l.total)}
	}
	if !dst.Caps().Write && l.total > 0 {
		return st, &block.OpError{Op: "copy", Node: s.targetName, Err: block.ErrReadOnly}
	}
	e := &engine{s: &s, l: l, dst: dst, res: newReserver(dst, &s)}
	if s.ordered {
		e.seq = newSequencer()
	}
	return e.run(ctx)
}

// engine is one running copy.
type engine struct {
	s   *settings
	l   layout
	dst block.Driver
	res *reserver // nil when the target takes no reservations

	stats struct{ read, written, zeroed, skipped atomic.Int64 }

	seq *sequencer // runs writes in target order (in-order mode), else nil

	errMu sync.Mutex
	err   error // the first error; set once

	progMu sync.Mutex // serializes Progress calls and guards done
	done   int64
}

func (e *engine) run(ctx context.Context) (Stats, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	items := make(chan item, e.s.parallel)
	p := &planner{s: e.s, l: e.l, out: items}
	var wg sync.WaitGroup
	for range e.s.parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.worker(ctx, cancel, items)
		}()
	}
	if err := p.run(ctx); err != nil && ctx.Err() == nil {
		e.fail(err)
		cancel()
	} else if err != nil {
		// Canceled: by a worker's failure, which it records, or by the
		// caller (see below); the planner's context error is neither.
		e.stop()
	}
	e.res.plannedAll(p.seq)
	wg.Wait()
	st := Stats{Read: e.stats.read.Load(), Written: e.stats.written.Load(),
		Zeroed: e.stats.zeroed.Load(), Skipped: e.stats.skipped.Load()}
	e.errMu.Lock()
	err := e.err
	e.errMu.Unlock()
	if (err == nil || errors.Is(err, errStopped)) && ctx.Err() != nil {
		// Only the caller's cancellation stops a copy without a failure
		// of its own.
		err = ctx.Err()
	}
	if err == nil && e.s.Progress != nil && e.l.total == 0 {
		e.s.Progress(0, 0)
	}
	return st, err
}

// fail records err if it is the first error and stops the writes still
// waiting for their turn. errStopped, which the items dropped because of a
// failure get, never hides that failure: the item whose step failed
// records its error too, maybe after them.
func (e *engine) fail(err error) {
	e.errMu.Lock()
	if e.err == nil || errors.Is(e.err, errStopped) && !errors.Is(err, errStopped) {
		e.err = err
	}
	e.errMu.Unlock()
	e.stop()
}

// stop releases everything that waits for other items: writes waiting for
// their turn, writers waiting for the scans of later items.
func (e *engine) stop() {
	if e.seq != nil {
		e.seq.stop()
	}
	e.res.stop()
}

func (e *engine) progress(n int64) {
	if e.s.Progress == nil {
		return
	}
	e.progMu.Lock()
	e.done += n
	e.s.Progress(e.done, e.l.total)
	e.progMu.Unlock()
}

// worker runs items until the channel closes or the copy fails. Each worker
// owns its buffers for the whole copy.
func (e *engine) worker(ctx context.Context, cancel context.CancelFunc, items <-chan item) {
	w := &worker{e: e}
	for it := range items {
		if ctx.Err() != nil {
			e.stop() // this item will never take its turn
			continue
		}
		if err := w.do(it); err != nil {
			e.fail(err)
			cancel()
		}
		e.progress(it.n)
	}
}

// write runs fn, the writes of item seq: in target order through the
// sequencer in in-order mode, at once otherwise.
func (e *engine) write(seq int64, fn func() error) error {
	if e.seq != nil {
		return e.seq.submit(seq, fn)
	}
	return fn()
}

// errStopped ends an item whose turn never came because another failed.
var errStopped = errors.New("copy stopped")

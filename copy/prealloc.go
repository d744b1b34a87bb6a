package copy

import (
	"sync"

	"github.com/thinblk/thinblk/block"
)

// reserver reserves the target's data runs before they are written, when
// the target takes the hint (block.Preallocator: a raw file). On ext4 a
// run reserved in one fallocate and then written costs markedly less than
// the same bytes allocated block by block by delayed allocation (see
// docs/BENCHMARKS.md). Only ranges about to be written are reserved, so
// the target ends up no more allocated than without the hint. Every data
// run is reserved, however short: runs left to delayed allocation get
// their blocks at writeback, after the reserved ones, and ext4 then
// inserts their extents between existing ones, splitting extent-tree
// leaves (8 more tree blocks than qemu-img's output for the benchmark
// image, where reserving every run gives the same 3).
//
// With in-order writes, a data run that reaches the end of its item is
// reserved together with the data runs that continue it in the following
// items, in one call: file systems place one reservation in one extent,
// while separate calls for the pieces of a run, cut at request boundaries,
// scatter it (ext4 allocates each call on its own) and grow the target's
// extent tree past what qemu-img's output needs. The writer of the item
// waits for the scans of the next items it needs, up to parallel-2 items
// ahead: at most two workers are not scanning then, the one whose item is
// being written and the one writing it (the sequencer may run one
// worker's write on another), and the others can scan the next items.
type reserver struct {
	p         block.Preallocator
	ordered   bool
	lookahead int64

	mu      sync.Mutex
	cond    *sync.Cond
	end     int64              // reserved up to here (ordered mode)
	scanned map[int64]itemRuns // seq -> runs of items scanned, not yet written
	planned int64              // number of items planned; -1 until known
	stopped bool               // the copy failed: nobody waits any more
}

// itemRuns is a scanned item waiting for its turn. Items without data
// (zero or skipped ranges, items dropped by a failed copy) have no runs.
type itemRuns struct {
	end  int64
	runs []run
}

func newReserver(dst block.Driver, s *settings) *reserver {
	if s.compressor != nil {
		return nil
	}
	p, ok := block.As[block.Preallocator](dst)
	if !ok {
		return nil
	}
	r := &reserver{p: p, ordered: s.ordered, lookahead: int64(s.parallel) - 2,
		scanned: make(map[int64]itemRuns), planned: -1}
	r.cond = sync.NewCond(&r.mu)
	return r
}

// scannedItem records the runs of item it (nil when it has no data to
// write), to be joined to the runs of the items before it. A nil reserver
// ignores the call, as all its methods do.
func (r *reserver) scannedItem(it item, runs []run) {
	if r == nil || !r.ordered {
		return
	}
	r.mu.Lock()
	r.scanned[it.seq] = itemRuns{end: it.end(), runs: runs}
	r.cond.Broadcast()
	r.mu.Unlock()
}

// plannedAll says that n items were planned: item n-1 is the last.
func (r *reserver) plannedAll(n int64) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.planned = n
	r.cond.Broadcast()
	r.mu.Unlock()
}

// stop wakes writers waiting for scans that will not come.
func (r *reserver) stop() {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.stopped = true
	r.cond.Broadcast()
	r.mu.Unlock()
}

// reserve reserves the data runs among runs, those of item it, right before
// they are written. Errors are ignored: the hint changes nothing a write
// would not also find out.
func (r *reserver) reserve(it item, runs []run) {
	if r == nil {
		return
	}
	if !r.ordered {
		for _, x := range runs {
			if x.k == runData {
				_ = r.p.Preallocate(x.a, x.b-x.a)
			}
		}
		return
	}
	r.mu.Lock()
	delete(r.scanned, it.seq)
	var todo [][2]int64
	for _, x := range runs {
		if x.k != runData || x.b <= r.end {
			continue // reserved already, with the run it continues
		}
		a, b := max(x.a, r.end), x.b
		if b == it.end() {
			b = r.continuation(it.seq, b)
		}
		if b > a {
			todo = append(todo, [2]int64{a, b})
			r.end = b
		}
	}
	r.mu.Unlock()
	for _, t := range todo {
		_ = r.p.Preallocate(t[0], t[1]-t[0])
	}
}

// continuation returns where the data run that reaches end, the end of
// item seq, stops, following it through the next items' scans (waiting
// for those within the lookahead).
// Preconditions: r.mu held.
func (r *reserver) continuation(seq, end int64) int64 {
	for next := seq + 1; ; next++ {
		ir, ok := r.scanned[next]
		for !ok && next-seq <= r.lookahead && !r.stopped && (r.planned < 0 || next < r.planned) {
			r.cond.Wait()
			ir, ok = r.scanned[next]
		}
		if !ok || len(ir.runs) == 0 {
			return end
		}
		first := ir.runs[0]
		if first.k != runData || first.a != end {
			return end
		}
		end = first.b
		if end != ir.end {
			return end
		}
	}
}

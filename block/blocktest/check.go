package blocktest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"

	"github.com/thinblk/thinblk/block"
)

// checker holds what every phase of one run shares.
type checker struct {
	d       block.Driver
	o       Options
	logf    func(format string, args ...any)
	m       *model
	size    int64
	align   int64 // alignment of generated requests
	caps    block.Caps
	lim     block.Limits
	backing block.Driver // d's backing node, nil when none

	maxRW      int64 // longest Pread/Pwrite
	maxZero    int64 // longest WriteZeroes
	maxDiscard int64 // longest Discard
}

// Check runs the conformance suite on d: the sequential random phase, the
// concurrent phase when o.Concurrent, a reopen when o.Reopen is set, and a
// final full compare and block-status walk over the whole node. logf gets
// the seed and progress lines (t.Logf in tests).
//
// It returns the node in use at the end (d, or what Reopen returned; nil
// when Reopen failed), which the caller closes, and nil or a *Failure
// describing the first broken promise. Check does not close d except
// through Reopen.
func Check(d block.Driver, o Options, logf func(format string, args ...any)) (block.Driver, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if o.Seed == 0 {
		s, err := seedFromEnv()
		if err != nil {
			return d, err
		}
		o.Seed = s
		logf("seed %d (replay with THINBLK_SEED=%d)", s, s)
	}
	c, err := newChecker(d, o, logf)
	if err != nil {
		return d, &Failure{Seed: o.Seed, Phase: "setup", Op: "caps/limits/info", Err: err}
	}
	r := c.runner("sequential", o.Seed, 0, c.size)
	if err := r.run(c.o.Ops, true); err != nil {
		return c.d, err
	}
	if o.Concurrent {
		if err := c.concurrent(); err != nil {
			return c.d, err
		}
	}
	if o.Reopen != nil {
		r := c.runner("reopen", o.Seed, 0, c.size)
		if err := r.do("flush", r.opFlush); err != nil {
			return c.d, err
		}
		nd, err := o.Reopen(c.d)
		if err != nil {
			return nil, r.fail("reopen", err)
		}
		c.d = nd
		if nd.Size() != c.size {
			return c.d, r.fail("reopen", fmt.Errorf("size %d after reopen, was %d", nd.Size(), c.size))
		}
		c.backing = block.BackingOf(nd)
		if err := r.do("info after reopen", c.checkInfo); err != nil {
			return c.d, err
		}
		if err := r.do("compare all", r.opCompareAll); err != nil {
			return c.d, err
		}
		if err := r.run(max(c.o.Ops/5, 10), true); err != nil {
			return c.d, err
		}
	}
	final := c.runner("final", o.Seed, 0, c.size)
	if err := final.do("compare all", final.opCompareAll); err != nil {
		return c.d, err
	}
	if err := final.do(fmt.Sprintf("block-status walk 0+%d", c.size), func() error {
		return final.walkStatus(0, c.size)
	}); err != nil {
		return c.d, err
	}
	logf("blocktest: %d+ operations passed (seed %d)", c.o.Ops, o.Seed)
	return c.d, nil
}

func newChecker(d block.Driver, o Options, logf func(string, ...any)) (*checker, error) {
	c := &checker{d: d, o: o, logf: logf, size: d.Size(), caps: d.Caps(), lim: d.Limits(),
		backing: block.BackingOf(d)}
	if c.size <= 0 {
		return nil, fmt.Errorf("node size %d", c.size)
	}
	if c.o.Ops <= 0 {
		c.o.Ops = defaultOps
	}
	if c.o.Workers <= 0 {
		c.o.Workers = defaultWorkers
	}
	if err := checkCaps(c.caps); err != nil {
		return nil, err
	}
	if err := checkLimits(c.lim); err != nil {
		return nil, err
	}
	if err := c.checkInfo(); err != nil {
		return nil, err
	}
	ra := max(c.lim.RequestAlign, 1)
	c.align = c.o.Align
	if c.align <= 0 {
		c.align = ra
	}
	if c.align%ra != 0 {
		return nil, fmt.Errorf("Options.Align %d is not a multiple of the node's RequestAlign %d", c.align, ra)
	}
	maxLen := c.o.MaxLen
	if maxLen <= 0 {
		maxLen = min(c.size/4, 1<<20)
	}
	maxLen = max(maxLen, c.align)
	capTo := func(limit int64) int64 {
		m := maxLen
		if limit > 0 {
			m = min(m, limit)
		}
		return max(m-m%c.align, c.align)
	}
	c.maxRW = capTo(c.lim.MaxTransfer)
	c.maxZero = capTo(c.lim.MaxWriteZeroes)
	c.maxDiscard = capTo(c.lim.MaxDiscard)
	if int64(len(o.Initial)) > c.size {
		return nil, fmt.Errorf("Options.Initial has %d bytes, node has %d", len(o.Initial), c.size)
	}
	c.m = newModel(o.Initial, c.size)
	logf("blocktest: size %d, align %d, max request %d, caps %+v", c.size, c.align, c.maxRW, c.caps)
	return c, nil
}

// checkCaps rejects contradictory capabilities.
func checkCaps(c block.Caps) error {
	switch {
	case c.DiscardZeroes && !c.Discard:
		return errors.New("Caps: DiscardZeroes without Discard (a discard that does nothing cannot promise zeros)")
	case c.FastZero && !c.WriteZeroes:
		return errors.New("Caps: FastZero without native WriteZeroes")
	case c.ZeroUnmap && !c.WriteZeroes:
		return errors.New("Caps: ZeroUnmap without native WriteZeroes")
	case !c.Write && (c.Discard || c.WriteZeroes || c.FUA):
		return errors.New("Caps: read-only node claims Discard, WriteZeroes or FUA")
	}
	return nil
}

// checkLimits rejects limits a caller could not honour.
func checkLimits(l block.Limits) error {
	if l.RequestAlign < 0 || l.PhysicalBlock < 0 || l.MaxTransfer < 0 || l.OptimalTransfer < 0 ||
		l.DiscardGranularity < 0 || l.DiscardAlignment < 0 || l.MaxDiscard < 0 || l.MaxWriteZeroes < 0 {
		return fmt.Errorf("Limits: negative field in %+v", l)
	}
	a := max(l.RequestAlign, 1)
	for _, f := range []struct {
		name string
		v    int64
	}{{"MaxTransfer", l.MaxTransfer}, {"MaxDiscard", l.MaxDiscard}, {"MaxWriteZeroes", l.MaxWriteZeroes}} {
		if f.v > 0 && (f.v < a || f.v%a != 0) {
			return fmt.Errorf("Limits: %s %d is not a positive multiple of RequestAlign %d", f.name, f.v, a)
		}
	}
	return nil
}

// checkInfo checks Info against the node's size and backing.
func (c *checker) checkInfo() error {
	info, err := c.d.Info()
	if err != nil {
		return fmt.Errorf("Info: %w", err)
	}
	switch {
	case info.VirtualSize != c.d.Size():
		return fmt.Errorf("Info.VirtualSize %d != Size() %d", info.VirtualSize, c.d.Size())
	case info.Format == "":
		return errors.New("Info.Format is empty")
	case info.AllocatedBytes < -1:
		return fmt.Errorf("Info.AllocatedBytes %d", info.AllocatedBytes)
	case info.Watermark < -1:
		return fmt.Errorf("Info.Watermark %d", info.Watermark)
	case c.backing == nil && !info.UnallocatedReadsZero:
		return errors.New("Info.UnallocatedReadsZero is false for a node without backing")
	}
	return nil
}

// runner is one stream of random operations on [lo, hi) of the node, with
// its own random source, scratch buffer and history. Runners of disjoint
// ranges may run in parallel.
type runner struct {
	c      *checker
	phase  string
	seed   int64
	rng    *rand.Rand
	lo, hi int64
	buf    []byte
	hist   history
	step   int
}

func (c *checker) runner(phase string, seed int64, lo, hi int64) *runner {
	return &runner{c: c, phase: phase, seed: seed, lo: lo, hi: hi,
		rng: rand.New(rand.NewPCG(uint64(seed), uint64(len(phase))^uint64(lo)))}
}

// fail wraps err as a *Failure at the current step.
func (r *runner) fail(op string, err error) error {
	return &Failure{Seed: r.c.o.Seed, Phase: r.phase, Step: r.step, Op: op, Err: err, History: r.hist.list()}
}

// do runs one named operation, records it and wraps its error.
func (r *runner) do(name string, op func() error) error {
	r.hist.add(name)
	err := op()
	r.step++
	if err != nil {
		return r.fail(name, err)
	}
	return nil
}

// scratch returns a buffer of n bytes, reused between operations.
func (r *runner) scratch(n int64) []byte {
	if int64(cap(r.buf)) < n {
		r.buf = make([]byte, n)
	}
	return r.buf[:n]
}

// concurrent runs Workers runners on disjoint ranges in parallel, plus an
// observer reading and walking block status across all of them, then
// compares everything.
func (c *checker) concurrent() error {
	w := int64(c.o.Workers)
	region := c.size / w
	region -= region % c.align
	if region < c.align {
		w, region = 1, c.size
	}
	errs := make([]error, w)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	observed := make(chan error, 1)
	go func() { observed <- c.observe(stop) }()
	for i := range w {
		lo, hi := i*region, (i+1)*region
		if i == w-1 {
			hi = c.size
		}
		r := c.runner(fmt.Sprintf("concurrent worker %d [%d,%d)", i, lo, hi), c.o.Seed+i+1, lo, hi)
		ops := max(c.o.Ops/int(w), 10)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.run(ops, false)
		}()
	}
	wg.Wait()
	close(stop)
	if err := <-observed; err != nil {
		return err
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	r := c.runner("after concurrent", c.o.Seed, 0, c.size)
	return r.do("compare all", r.opCompareAll)
}

// observe reads random ranges and walks their block status across the
// whole node until stop is closed, while workers write. Contents are in
// flux, so it checks only that requests succeed and that extents are well
// formed; its value is in running reads and status in parallel with
// writes, as the contract allows (and the race detector watches).
func (c *checker) observe(stop <-chan struct{}) error {
	r := c.runner("concurrent observer", c.o.Seed-1, 0, c.size)
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		off, n := r.pickRange(c.maxRW)
		var err error
		if r.rng.IntN(2) == 0 {
			err = r.do(fmt.Sprintf("pread %d+%d (unchecked)", off, n), func() error {
				return c.d.Pread(r.scratch(n), off)
			})
		} else {
			err = r.do(fmt.Sprintf("block-status walk %d+%d (shape only)", off, n), func() error {
				for cur, end := off, off+n; cur < end; {
					e, err := c.d.BlockStatus(cur, end-cur)
					if err == nil {
						err = c.checkExtentShape(e, cur, end-cur)
					}
					if err != nil {
						return fmt.Errorf("BlockStatus(%d, %d) = %+v: %w", cur, end-cur, e, err)
					}
					cur = e.End()
				}
				return nil
			})
		}
		if err != nil {
			return err
		}
	}
}

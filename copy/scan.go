package copy

import (
	"bytes"

	"github.com/thinblk/thinblk/block"
)

// runKind says what to do with a run of a data buffer.
type runKind uint8

const (
	runData runKind = iota // write it
	runZero                // it is zeros: make the target read zeros
	runSame                // it equals the backing: leave it
)

// run is target range [a, b) of one kind.
type run struct {
	a, b int64
	k    runKind
}

// scan cuts buf (target offset off) into runs at granule boundaries (in
// target offsets): granules equal to back (when back is non-nil) are
// runSame, all-zero granules are runZero, the rest runData. Adjacent runs
// of one kind are merged.
func (w *worker) scan(buf, back []byte, off int64) []run {
	g := w.e.s.granule
	runs := make([]run, 0, 4)
	end := off + int64(len(buf))
	for a := off; a < end; {
		b := min(roundDown(a, g)+g, end)
		p := buf[a-off : b-off]
		k := runData
		switch {
		case back != nil && bytes.Equal(p, back[a-off:b-off]):
			k = runSame
		case block.IsZero(p):
			k = runZero
		}
		if len(runs) > 0 && runs[len(runs)-1].k == k {
			runs[len(runs)-1].b = b
		} else {
			runs = append(runs, run{a: a, b: b, k: k})
		}
		a = b
	}
	return runs
}

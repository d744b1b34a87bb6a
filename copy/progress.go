package copy

import (
	"fmt"
	"io"
	"strings"
	"sync"
)

// Progress prints the progress of a long job the way qemu-img -p does. On
// a terminal it draws a bar that it redraws in place; otherwise it writes
// qemu-img's "    (xx.xx/100%)" updates, separated by carriage returns,
// whenever the progress moves by at least one percent. Update is safe for
// concurrent use; Done ends the output with a newline.
type Progress struct {
	mu    sync.Mutex // guards the fields below
	w     io.Writer
	tty   bool
	last  float64 // last percentage printed; -1 before the first
	ended bool
}

// NewProgress returns a printer writing to w; tty selects the bar. It
// prints 0% at once, as qemu-img does.
func NewProgress(w io.Writer, tty bool) *Progress {
	p := &Progress{w: w, tty: tty, last: -1}
	p.print(0)
	return p
}

// Update reports done bytes out of total. It fits Options.Progress.
func (p *Progress) Update(done, total int64) {
	pct := 100.0
	if total > 0 {
		pct = float64(done) * 100 / float64(total)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended || (pct-p.last < 1 && pct < 100) || pct == p.last {
		return
	}
	p.printLocked(pct)
}

// Done repeats the last state (as qemu-img does) and ends the output with
// a newline.
func (p *Progress) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended {
		return
	}
	p.ended = true
	p.printLocked(p.last)
	fmt.Fprint(p.w, "\n")
}

func (p *Progress) print(pct float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.printLocked(pct)
}

// barWidth is the number of cells of the terminal bar.
const barWidth = 50

func (p *Progress) printLocked(pct float64) {
	p.last = pct
	if !p.tty {
		fmt.Fprintf(p.w, "    (%3.2f/100%%)\r", pct)
		return
	}
	full := int(pct / 100 * barWidth)
	full = min(max(full, 0), barWidth)
	fmt.Fprintf(p.w, "\r[%s%s] %6.2f%%", strings.Repeat("#", full), strings.Repeat(" ", barWidth-full), pct)
}

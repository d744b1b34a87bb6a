package image

import (
	"fmt"

	"github.com/thinblk/thinblk/block"
)

// Probe returns the name of the format whose Probe gives head the highest
// score, or "raw" when none claims it. Ties go to the alphabetically first
// name. head is the image's first bytes (up to ProbeSize).
func Probe(head []byte) string {
	best, bestScore := "raw", 0
	for _, f := range Formats() {
		if f.Probe == nil {
			continue
		}
		if s := f.Probe(head); s > bestScore {
			best, bestScore = f.Name, s
		}
	}
	return best
}

// readHead reads up to ProbeSize leading bytes of d (fewer for a smaller
// node).
func readHead(d block.Driver) ([]byte, error) {
	n := min(int64(ProbeSize), d.Size())
	head := make([]byte, n)
	if n == 0 {
		return head, nil
	}
	if err := d.Pread(head, 0); err != nil {
		return nil, fmt.Errorf("reading the first %d bytes to probe the format: %w", n, err)
	}
	return head, nil
}

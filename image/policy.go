package image

import (
	"github.com/thinblk/thinblk/block"
)

// parsePolicy turns o.Discard and o.DetectZeroes into a wrapper for the top
// node (nil when both are defaults that need none) and reports whether
// discards pass down to storage.
func parsePolicy(o Options) (wrap func(block.Driver) block.Driver, unmap bool, err error) {
	discard := block.DiscardUnmap
	if o.Discard != "" {
		if discard, err = block.ParseDiscardMode(o.Discard); err != nil {
			return nil, false, reasonf(block.ErrInvalid, "%v", err)
		}
	}
	detect := block.DetectZeroesOff
	if o.DetectZeroes != "" {
		if detect, err = block.ParseDetectZeroes(o.DetectZeroes); err != nil {
			return nil, false, reasonf(block.ErrInvalid, "%v", err)
		}
	}
	unmap = discard == block.DiscardUnmap
	if unmap && detect == block.DetectZeroesOff {
		return nil, true, nil
	}
	p := block.Policy{Discard: discard, DetectZeroes: detect}
	return func(d block.Driver) block.Driver { return block.WithPolicy(d, p) }, unmap, nil
}

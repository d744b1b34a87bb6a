package block

// WithPolicy returns a node applying p to requests for d:
//
//   - Discard mode ignore: Discard validates its range (ErrOutOfRange) and
//     that d is writable (ErrReadOnly), then does nothing. WriteZeroes loses
//     MayUnmap, as in qemu, where write-zeroes may only unmap when discard
//     is on. Caps reports Discard, DiscardZeroes and ZeroUnmap false and Info
//     ZeroUnmapDeallocates false.
//   - Discard mode unmap: Discard and WriteZeroes pass down unchanged.
//   - detect-zeroes on or unmap: a Pwrite whose payload is all zeros
//     becomes [ZeroRange] with the caller's FUA (so it falls back to writing
//     the zeros when d cannot zero natively), plus MayUnmap when
//     detect-zeroes is unmap and the discard mode is unmap.
//
// WithPolicy returns d itself when p changes nothing (discard unmap,
// detect-zeroes off). The node implements [Wrapper] and forwards [Backed],
// so [ChainStatus] still walks d's chain; everything else passes through.
// It is safe for concurrent use as far as d is.
func WithPolicy(d Driver, p Policy) Driver {
	if p.Discard == DiscardUnmap && p.DetectZeroes == DetectZeroesOff {
		return d
	}
	return &policyNode{d: d, p: p}
}

type policyNode struct {
	d Driver
	p Policy
}

func (n *policyNode) Unwrap() Driver                  { return n.d }
func (n *policyNode) Backing() Driver                 { return BackingOf(n.d) }
func (n *policyNode) Size() int64                     { return n.d.Size() }
func (n *policyNode) Flush() error                    { return n.d.Flush() }
func (n *policyNode) Close() error                    { return n.d.Close() }
func (n *policyNode) Limits() Limits                  { return n.d.Limits() }
func (n *policyNode) Pread(p []byte, off int64) error { return n.d.Pread(p, off) }

func (n *policyNode) BlockStatus(off, length int64) (Extent, error) {
	return n.d.BlockStatus(off, length)
}

func (n *policyNode) Caps() Caps {
	c := n.d.Caps()
	if n.p.Discard == DiscardIgnore {
		c.Discard = false
		c.DiscardZeroes = false
		c.ZeroUnmap = false
	}
	return c
}

func (n *policyNode) Info() (Info, error) {
	info, err := n.d.Info()
	if err == nil && n.p.Discard == DiscardIgnore {
		info.ZeroUnmapDeallocates = false
	}
	return info, err
}

func (n *policyNode) Pwrite(p []byte, off int64, flags Flags) error {
	if n.p.DetectZeroes != DetectZeroesOff && len(p) > 0 && IsZero(p) {
		zflags := flags & FUA
		if n.p.DetectZeroes == DetectZeroesUnmap && n.p.Discard == DiscardUnmap {
			zflags |= MayUnmap
		}
		return ZeroRange(n.d, off, int64(len(p)), zflags)
	}
	return n.d.Pwrite(p, off, flags)
}

func (n *policyNode) WriteZeroes(off, length int64, flags Flags) error {
	if n.p.Discard == DiscardIgnore {
		flags &^= MayUnmap
	}
	return n.d.WriteZeroes(off, length, flags)
}

func (n *policyNode) Discard(off, length int64, flags Flags) error {
	if n.p.Discard == DiscardUnmap {
		return n.d.Discard(off, length, flags)
	}
	if err := CheckRange(off, length, n.d.Size()); err != nil {
		return &OpError{Op: "discard", Node: "policy", Off: off, Len: length, Err: err}
	}
	if !n.d.Caps().Write {
		return &OpError{Op: "discard", Node: "policy", Off: off, Len: length,
			Err: ErrReadOnly}
	}
	return nil
}

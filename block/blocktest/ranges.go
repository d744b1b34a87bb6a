package blocktest

// Random request ranges. Lengths mix small, medium and long requests;
// offsets mix uniform positions, positions just around 4 KiB / 64 KiB /
// 1 MiB boundaries (where chunked and clustered nodes split requests) and
// positions at the end of the range. Every offset and length is a multiple
// of the run's alignment, except that a request may end at the node's Size.

// pickLen returns a length in [align, maxLen] (maxLen >= align), a multiple of
// align.
func (r *runner) pickLen(maxLen int64) int64 {
	a := r.c.align
	unit := max(a, 512)
	var n int64
	switch k := r.rng.IntN(10); {
	case k < 4:
		n = 1 + r.rng.Int64N(min(maxLen, 4*unit))
	case k < 8:
		n = 1 + r.rng.Int64N(min(maxLen, 64<<10))
	default:
		n = 1 + r.rng.Int64N(maxLen)
	}
	if rem := n % a; rem != 0 {
		n += a - rem
	}
	if n > maxLen {
		n = maxLen - maxLen%a
	}
	return n
}

// pickRange returns a request range inside [r.lo, r.hi) of at most maxLen
// bytes.
func (r *runner) pickRange(maxLen int64) (off, n int64) {
	a := r.c.align
	span := r.hi - r.lo
	maxLen = min(maxLen, span)
	if maxLen < a {
		// A range shorter than one aligned block: only at the node's end.
		return r.lo, span
	}
	n = r.pickLen(maxLen)
	limit := r.hi - n // last allowed offset
	switch k := r.rng.IntN(10); {
	case k < 5:
		off = r.lo + r.rng.Int64N(limit-r.lo+1)
	case k < 8:
		boundary := []int64{4096, 64 << 10, 1 << 20}[r.rng.IntN(3)]
		delta := (r.rng.Int64N(7) - 3) * a
		off = r.lo + r.rng.Int64N(span/boundary+1)*boundary + delta
		if r.rng.IntN(2) == 0 {
			off -= n // end at the boundary rather than start there
		}
	default:
		off = limit - r.rng.Int64N(min(limit-r.lo, 4*max(a, 512))+1)
	}
	off = min(max(off, r.lo), limit)
	off -= (off - r.lo) % a
	// Now and then run to the node's end, which may be unaligned.
	if r.hi == r.c.size && r.c.size%a != 0 && r.rng.IntN(8) == 0 && r.c.size-off <= maxLen {
		n = r.c.size - off
	}
	return off, n
}

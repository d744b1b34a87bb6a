package block

import "errors"

// ZeroRange makes [off, off+n) of d read as zeros. It calls d.WriteZeroes in
// pieces of at most Limits().MaxWriteZeroes bytes and, when a piece fails
// with ErrNotSupported and flags has no NoFallback, writes zero bytes there
// through [WriteZeroesFallback] (with FUA kept and MayUnmap dropped).
//
// ZeroRange is for callers of a node (tools, filters, exports). A driver
// implementing WriteZeroes must not call ZeroRange on itself (it would
// recurse); it calls WriteZeroesFallback directly.
//
// With NoFallback the error is ErrNotSupported (wrapped) when any piece
// cannot be zeroed natively; pieces before it may already be zeroed. The
// same holds for other errors: a failed ZeroRange leaves the range partly
// zeroed.
func ZeroRange(d Driver, off, n int64, flags Flags) error {
	return SplitRequest(off, n, d.Limits().MaxWriteZeroes, func(off, n int64) error {
		err := d.WriteZeroes(off, n, flags)
		if err != nil && errors.Is(err, ErrNotSupported) && !flags.Has(NoFallback) {
			return WriteZeroesFallback(d, off, n, flags&FUA)
		}
		return err
	})
}

// DiscardRange passes a discard of [off, off+n) to d in pieces of at most
// Limits().MaxDiscard bytes. Like Driver.Discard it is a hint: afterwards
// the range reads as zeros only if d.Caps().DiscardZeroes.
func DiscardRange(d Driver, off, n int64, flags Flags) error {
	return SplitRequest(off, n, d.Limits().MaxDiscard, func(off, n int64) error {
		return d.Discard(off, n, flags)
	})
}

package block

// SplitRequest calls fn for consecutive pieces of [off, off+n), each at most
// max bytes long, in order, and stops at the first error, which it returns
// unchanged. max <= 0 means "no limit": fn is called once. A request with
// n <= 0 is passed to fn as it is (once), so that fn validates it.
//
// It is how callers honour Limits.MaxTransfer, MaxDiscard and MaxWriteZeroes.
// Pieces that already succeeded stay done when a later one fails: like any
// failed request, the range is then in an unknown mix of old and new state.
func SplitRequest(off, n, max int64, fn func(off, n int64) error) error {
	if max <= 0 || n <= max {
		return fn(off, n)
	}
	for n > 0 {
		c := min(n, max)
		if err := fn(off, c); err != nil {
			return err
		}
		off += c
		n -= c
	}
	return nil
}

package image

import "github.com/thinblk/thinblk/block"

// wrapper forwards every Driver method to the node it wraps, keeps the
// backing chain visible (Backing) and lets block.As reach the inner node
// (Unwrap, block.Wrapper). Concrete wrappers embed it and override what they change.
type wrapper struct {
	block.Driver
}

// Unwrap returns the wrapped node.
func (w wrapper) Unwrap() block.Driver { return w.Driver }

// Backing returns the wrapped node's backing node, or nil.
func (w wrapper) Backing() block.Driver { return block.BackingOf(w.Driver) }

// writethrough makes every write durable before it returns (cache modes
// writethrough and directsync): Pwrite, WriteZeroes and Discard are sent with
// FUA. Caps are unchanged; Flush still works.
type writethrough struct{ wrapper }

func (w writethrough) Pwrite(p []byte, off int64, flags block.Flags) error {
	return w.Driver.Pwrite(p, off, flags|block.FUA)
}

func (w writethrough) WriteZeroes(off, n int64, flags block.Flags) error {
	return w.Driver.WriteZeroes(off, n, flags|block.FUA)
}

func (w writethrough) Discard(off, n int64, flags block.Flags) error {
	return w.Driver.Discard(off, n, flags|block.FUA)
}

// noFlush drops flushes and FUA (cache mode unsafe): Flush returns nil
// without doing anything, and Caps says there is no volatile cache to flush.
// Data reaches the disk when the kernel writes it back.
type noFlush struct{ wrapper }

func (w noFlush) Flush() error { return nil }

func (w noFlush) Pwrite(p []byte, off int64, flags block.Flags) error {
	return w.Driver.Pwrite(p, off, flags&^block.FUA)
}

func (w noFlush) WriteZeroes(off, n int64, flags block.Flags) error {
	return w.Driver.WriteZeroes(off, n, flags&^block.FUA)
}

func (w noFlush) Discard(off, n int64, flags block.Flags) error {
	return w.Driver.Discard(off, n, flags&^block.FUA)
}

func (w noFlush) Caps() block.Caps {
	c := w.Driver.Caps()
	c.Flush = false
	c.FUA = true // FUA "honoured" trivially: nothing is promised in unsafe mode
	return c
}

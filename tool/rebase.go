package tool

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/copy"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/protocol/mem"
)

// RebaseOptions are the flags of `thinblk rebase` (qemu-img rebase).
type RebaseOptions struct {
	// Format (-f) is the image's format; "" probes.
	Format string
	// Backing (-b) is the new backing file ("" = none), as it will be
	// recorded (relative names are relative to the image's folder);
	// BackingFormat (-F) its format.
	Backing, BackingFormat string
	// Unsafe (-u) only changes the recorded name, copying nothing.
	Unsafe bool
	// Cache (-t) is the image's cache mode, SrcCache (-T) the backing
	// files'.
	Cache, SrcCache string
	// Progress (-p) and Quiet (-q).
	Progress, Quiet bool
	// ForceShare (-U) opens the new backing file although another
	// process writes it (see image.Options). The image itself is always
	// locked for writing.
	ForceShare bool
}

// BackingSetter is implemented by formats that can change the backing file
// recorded in an image (qcow2's header). name "" removes it.
type BackingSetter interface {
	SetBackingFile(name, format string) error
}

// Rebase changes the backing file of name to o.Backing. In safe mode (not
// o.Unsafe) it first makes the image keep what it reads: for every range
// the image itself does not store, the old backing chain's content is
// compared with the new backing's, and only the granules that differ are
// written into the image (zeros with write-zeroes). Then the new name is
// recorded. On error before the name changes, the image reads the same as
// before.
func Rebase(progress io.Writer, name string, o RebaseOptions) (err error) {
	if o.BackingFormat != "" && o.Backing == "" {
		return errors.New("rebase: -F needs -b")
	}
	if o.Backing != "" && o.BackingFormat == "" {
		// As qemu-img 7.2: a backing format is never left to probing.
		return fmt.Errorf("Could not change the backing file to '%s': backing format must be specified", o.Backing)
	}
	top, err := image.Open(name, image.Options{Format: o.Format, Cache: o.Cache, NoBacking: o.Unsafe})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := top.Close(); cerr != nil && err == nil {
			err = &block.OpError{Op: "close", Node: name, Err: cerr}
		}
	}()
	setter, ok := block.As[BackingSetter](top)
	if !ok {
		info, _ := top.Info()
		return fmt.Errorf("rebase %s: format %s cannot change its backing file: %w", name, info.Format, block.ErrNotSupported)
	}
	if !o.Unsafe {
		if err := rebaseCopy(progress, top, name, o); err != nil {
			return err
		}
	}
	if err := setter.SetBackingFile(o.Backing, o.BackingFormat); err != nil {
		return &block.OpError{Op: "rebase", Node: name, Err: err}
	}
	if err := top.Flush(); err != nil {
		return &block.OpError{Op: "flush", Node: name, Err: err}
	}
	return nil
}

// rebaseCopy writes into top what it must store itself to read the same
// over the new backing file.
func rebaseCopy(progress io.Writer, top block.Driver, name string, o RebaseOptions) error {
	var newBacking block.Driver
	if o.Backing != "" {
		nb, err := image.Open(image.ResolveBacking(name, o.Backing), image.Options{Format: o.BackingFormat, ReadOnly: true, Cache: o.SrcCache, ForceShare: o.ForceShare})
		if err != nil {
			return err
		}
		defer nb.Close()
		if err := checkNoLoop(name, o.Backing, nb); err != nil {
			return err
		}
		newBacking = nb
	} else {
		newBacking = mem.New(top.Size()) // no backing: reads zeros
	}
	src := &rebaseSource{top: top, old: block.BackingOf(top)}
	co := copy.Options{Backing: newBacking, TargetName: name}
	var prog *copy.Progress
	if o.Progress && !o.Quiet {
		prog = copy.NewProgress(progress, IsTerminal(progress))
		co.Progress = prog.Update
	}
	// Base is only a marker here: rebaseSource reports the ranges the image
	// stores itself as unallocated, and with a Base the engine skips them.
	_, err := copy.RunSources(context.Background(), []copy.Source{{Node: src, Len: top.Size(), Base: top, Name: name + " (old backing)"}}, top, co)
	if prog != nil {
		prog.Done()
	}
	if err == nil {
		err = top.Flush()
	}
	if err != nil {
		return fmt.Errorf("rebase: %w (%s still has its old backing file and reads the same)", err, name)
	}
	return nil
}

// checkNoLoop refuses a new backing file whose chain (nb, opened from
// backing as recorded in name) holds the image name itself: recording it
// would make a backing loop that no tool can open again. (QEMU refuses
// the same rebase because its in-process locks conflict; ours do not.)
func checkNoLoop(name, backing string, nb block.Driver) error {
	self := image.ChainKey(name)
	cur := image.ResolveBacking(name, backing)
	for d := nb; d != nil; d = block.BackingOf(d) {
		if image.ChainKey(cur) == self {
			return fmt.Errorf("rebase %s: %w: the new backing file %s has %s in its backing chain (a backing loop)", name, block.ErrInvalid, backing, name)
		}
		bf, ok := block.As[image.BackingFiler](d)
		if !ok {
			return nil
		}
		next, _ := bf.BackingFile()
		if next == "" {
			return nil
		}
		cur = image.ResolveBacking(cur, next)
	}
	return nil
}

// rebaseSource is a read-only view of what the old backing chain shows
// through the image top: ranges top stores itself are reported as
// unallocated (to be skipped), the others with the old chain's status;
// reads come from the old chain (zeros past its end, or without one).
type rebaseSource struct {
	top block.Driver // the image being rebased (its own layer only)
	old block.Driver // the old backing chain, or nil
}

func (s *rebaseSource) Size() int64 { return s.top.Size() }

func (s *rebaseSource) Pread(p []byte, off int64) error {
	n := int64(0)
	if s.old != nil {
		n = min(int64(len(p)), max(s.old.Size()-off, 0))
		if n > 0 {
			if err := s.old.Pread(p[:n], off); err != nil {
				return err
			}
		}
	}
	clear(p[n:])
	return nil
}

func (s *rebaseSource) BlockStatus(off, n int64) (block.Extent, error) {
	e, err := s.top.BlockStatus(off, n)
	if err != nil {
		return block.Extent{}, err
	}
	if e.Status.Present() {
		return block.Extent{Off: off, Len: e.Len, HostOffset: -1}, nil
	}
	if s.old == nil || off >= s.old.Size() {
		return block.Extent{Off: off, Len: e.Len, Status: block.Zero, HostOffset: -1}, nil
	}
	x, err := block.ChainStatus(s.old, off, min(e.Len, s.old.Size()-off), nil)
	if err != nil {
		return block.Extent{}, err
	}
	st := block.Data
	if readsZero(x) {
		st = block.Zero
	}
	return block.Extent{Off: off, Len: min(x.Len, e.Len), Status: st, HostOffset: -1}, nil
}

func (s *rebaseSource) Pwrite([]byte, int64, block.Flags) error { return block.ErrReadOnly }
func (s *rebaseSource) Discard(int64, int64, block.Flags) error { return block.ErrReadOnly }
func (s *rebaseSource) WriteZeroes(int64, int64, block.Flags) error {
	return block.ErrReadOnly
}
func (s *rebaseSource) Flush() error         { return nil }
func (s *rebaseSource) Close() error         { return nil }
func (s *rebaseSource) Caps() block.Caps     { return block.Caps{BlockStatus: true} }
func (s *rebaseSource) Limits() block.Limits { return block.Limits{RequestAlign: 1} }
func (s *rebaseSource) Info() (block.Info, error) {
	return block.Info{Format: "rebase-view", VirtualSize: s.Size(), AllocatedBytes: -1, Watermark: -1}, nil
}

package tool

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/copy"
	"github.com/thinblk/thinblk/image"
)

// CommitOptions are the flags of `thinblk commit` (qemu-img commit).
type CommitOptions struct {
	// Format (-f) is the top image's format; "" probes.
	Format string
	// Base (-b) is the image of the chain to commit into; "" means the top
	// image's backing file.
	Base string
	// Drop (-d) leaves the top image as it is; otherwise it is emptied
	// after the commit when its format can do that.
	Drop bool
	// Cache (-t) is the cache mode of the base; default "unsafe" (flushed
	// once at the end).
	Cache string
	// Progress (-p) and Quiet (-q).
	Progress, Quiet bool
}

// Emptier is implemented by formats that can drop every cluster of an
// overlay so that it reads through to its backing file again (what
// qemu-img commit does after committing, unless -d).
type Emptier interface {
	MakeEmpty() error
}

// Commit copies what the chain above the base image stores (the top image
// and any images between it and the base) into the base image, sparsely:
// data is written, and ranges that read as zeros above the base (zero or
// deallocated clusters) become zeros in the base (write-zeroes with
// unmap), not written bytes. Ranges unallocated above the base are not
// touched. Then, unless o.Drop, the top image is emptied if its format
// implements Emptier. Prints "Image committed." like qemu-img.
func Commit(w, progress io.Writer, name string, o CommitOptions) (err error) {
	top, err := image.Open(name, image.Options{Format: o.Format, ReadOnly: true})
	if err != nil {
		return err
	}
	defer top.Close()
	bf, ok := block.As[image.BackingFiler](top)
	var backingName, backingFmt string
	if ok {
		backingName, backingFmt = bf.BackingFile()
	}
	if !ok || backingName == "" || block.BackingOf(top) == nil {
		return fmt.Errorf("commit %s: the image has no backing file", name)
	}
	baseName, baseFmt := image.ResolveBacking(name, backingName), backingFmt
	baseNode := block.BackingOf(top)
	if o.Base != "" {
		want := o.Base
		baseNode = chainNode(top, name, want)
		if baseNode == nil {
			return fmt.Errorf("commit %s: %s is not in the image's backing chain", name, o.Base)
		}
		baseName, baseFmt = want, ""
		if info, err := baseNode.Info(); err == nil {
			baseFmt = info.Format
		}
	}
	cache := o.Cache
	if cache == "" {
		cache = "unsafe"
	}
	base, err := image.Open(baseName, image.Options{Format: baseFmt, Cache: cache, NoBacking: block.BackingOf(baseNode) == nil})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := base.Close(); cerr != nil && err == nil {
			err = &block.OpError{Op: "close", Node: baseName, Err: cerr}
		}
	}()
	if base.Size() < top.Size() {
		r, ok := block.As[growable](base)
		if !ok {
			return fmt.Errorf("commit %s: the base %s (%d bytes) is smaller than the image (%d bytes) and cannot grow", name, baseName, base.Size(), top.Size())
		}
		if err := r.Resize(top.Size(), false, false); err != nil {
			return &block.OpError{Op: "resize", Node: baseName, Err: err}
		}
	}
	co := copy.Options{Base: baseNode, SourceName: name, TargetName: baseName}
	var prog *copy.Progress
	if o.Progress && !o.Quiet {
		prog = copy.NewProgress(progress, IsTerminal(progress))
		co.Progress = prog.Update
	}
	_, err = copy.Run(context.Background(), top, base, co)
	if prog != nil {
		prog.Done()
	}
	if err == nil {
		if ferr := base.Flush(); ferr != nil {
			err = &block.OpError{Op: "flush", Node: baseName, Err: ferr}
		}
	}
	if err != nil {
		return fmt.Errorf("commit: %w (the base %s is partly updated; %s is unchanged)", err, baseName, name)
	}
	if !o.Drop && o.Base == "" {
		if err := emptyTop(name, o.Format); err != nil {
			return err
		}
	}
	if !o.Quiet {
		fmt.Fprintln(w, "Image committed.")
	}
	return nil
}

// growable is a base image that can grow to the top image's size (qcow2's
// Resize).
type growable interface {
	Resize(newSize int64, shrink, discardData bool) error
}

// errCannotEmpty says the top image's format cannot drop its clusters.
var errCannotEmpty = errors.New("the format cannot empty an image")

// emptyTop drops the clusters of the committed top image when its format
// can; otherwise the image keeps them (it reads the same as the base
// anyway), and nothing is lost.
func emptyTop(name, format string) error {
	d, err := image.Open(name, image.Options{Format: format, NoBacking: true})
	if err != nil {
		return err
	}
	defer d.Close()
	e, ok := block.As[Emptier](d)
	if !ok {
		return nil
	}
	if err := e.MakeEmpty(); err != nil {
		return &block.OpError{Op: "empty", Node: name, Err: fmt.Errorf("%w: %w", errCannotEmpty, err)}
	}
	return d.Flush()
}

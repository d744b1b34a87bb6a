package tool

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/copy"
	"github.com/thinblk/thinblk/image"
)

// DDOptions are the operands and flags of `thinblk dd`, as qemu-img dd
// takes them.
type DDOptions struct {
	// Format (-f) is the input's format ("" probes); OutFormat (-O) the
	// output's ("" means raw).
	Format, OutFormat string
	// In and Out are if= and of=.
	In, Out string
	// BlockSize is bs= in bytes (default 512); Count (count=, -1 for all)
	// and Skip (skip=) count blocks of BlockSize.
	BlockSize, Count, Skip int64
	// ForceShare (-U) opens the image read although another process writes
	// it: no permission is refused to others (see image.Options).
	ForceShare bool
}

// ParseDDOperands parses qemu-img dd's operands ("if=IN", "of=OUT",
// "bs=SIZE", "count=N", "skip=N") into o. bs takes size suffixes; count
// and skip are block counts (suffixes allowed, as in qemu-img).
func ParseDDOperands(args []string, o *DDOptions) error {
	o.BlockSize, o.Count = 512, -1
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			return fmt.Errorf("dd: unrecognized operand %s", a)
		}
		var err error
		switch k {
		case "if":
			o.In = v
		case "of":
			o.Out = v
		case "bs":
			o.BlockSize, err = ParseSize(v)
			if err == nil && (o.BlockSize < 1 || o.BlockSize > math.MaxInt32) {
				err = fmt.Errorf("invalid bs %s: must be between 1 and %d", v, math.MaxInt32)
			}
		case "count":
			o.Count, err = ParseSize(v)
		case "skip":
			o.Skip, err = ParseSize(v)
		default:
			return fmt.Errorf("dd: unrecognized operand %s", k)
		}
		if err != nil {
			return fmt.Errorf("dd: %s: %w", k, err)
		}
	}
	if o.In == "" || o.Out == "" {
		return errors.New("dd: both if= and of= are required")
	}
	return nil
}

// DD copies blocks [Skip, Skip+Count) of bs bytes of the input into a new
// output image (created, or re-created, with that size), sparsely: holes
// and zeros of the input stay holes in the output. Unlike qemu-img 7.2,
// skip= works together with count=.
func DD(o DDOptions) error {
	if o.BlockSize <= 0 {
		o.BlockSize = 512
	}
	in, err := image.Open(o.In, image.Options{Format: o.Format, ReadOnly: true, ForceShare: o.ForceShare})
	if err != nil {
		return err
	}
	defer in.Close()
	size := in.Size()
	if o.Skip > 0 && (o.Skip > size/o.BlockSize || o.Skip*o.BlockSize > size) {
		return fmt.Errorf("dd: %s: cannot skip to offset %d*%d: the image has %d bytes", o.In, o.Skip, o.BlockSize, size)
	}
	start := o.Skip * o.BlockSize
	n := size - start
	if o.Count >= 0 && o.Count <= math.MaxInt64/o.BlockSize {
		n = min(n, o.Count*o.BlockSize)
	}
	outFmt := o.OutFormat
	if outFmt == "" {
		outFmt = "raw"
	}
	if err := image.Create(o.Out, outFmt, image.CreateOptions{Size: n, Options: map[string]string{}}); err != nil {
		return err
	}
	out, err := image.Open(o.Out, image.Options{Format: outFmt, Cache: "unsafe"})
	if err != nil {
		return err
	}
	defer out.Close()
	_, err = copy.RunSources(context.Background(), []copy.Source{{Node: in, Off: start, Len: n, Name: o.In}}, out,
		copy.Options{TargetIsZero: true, TargetName: o.Out})
	if err == nil {
		if ferr := out.Flush(); ferr != nil {
			err = &block.OpError{Op: "flush", Node: o.Out, Err: ferr}
		}
	}
	if err != nil {
		return fmt.Errorf("dd: %w (output %s is incomplete)", err, o.Out)
	}
	return nil
}

package tool

import (
	"fmt"
	"io"
	"strings"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/protocol/file"
)

// ResizeOptions are the flags of `thinblk resize` (qemu-img resize).
type ResizeOptions struct {
	Format string // -f; "" probes
	// Shrink (--shrink) allows making the image smaller.
	Shrink bool
	// AllowDataLoss lets a shrink drop allocated data past the new end
	// (qemu-img resize --shrink always does; thinblk asks first).
	AllowDataLoss bool
	Quiet         bool // -q
}

// qcow2Resizer is what format/qcow2 offers.
type qcow2Resizer interface {
	Resize(newSize int64, shrink, discardData bool) error
}

// truncater is what format/raw (and protocol nodes) offer.
type truncater interface {
	Truncate(size int64) error
}

// Resize changes the virtual size of an image. size is absolute, or
// relative with a leading + or -; suffixes k, M, G, T as in create.
func Resize(w io.Writer, name, size string, o ResizeOptions) error {
	d, err := image.Open(name, image.Options{Format: o.Format, NoBacking: false, Perm: file.PermResize})
	if err != nil {
		return err
	}
	defer d.Close()
	old := d.Size()
	newSize, err := parseResizeSize(size, old)
	if err != nil {
		return err
	}
	if newSize < old && !o.Shrink {
		return fmt.Errorf("resize: %s: use the --shrink option to shrink an image (from %d to %d bytes)", name, old, newSize)
	}
	if r, ok := block.As[qcow2Resizer](d); ok {
		err = r.Resize(newSize, o.Shrink, o.AllowDataLoss)
	} else if t, ok := block.As[truncater](d); ok {
		err = t.Truncate(newSize)
	} else {
		info, _ := d.Info()
		err = fmt.Errorf("%w: format %s cannot be resized", block.ErrNotSupported, info.Format)
	}
	if err != nil {
		return fmt.Errorf("resize: %s: %w", name, err)
	}
	if err := d.Flush(); err != nil {
		return err
	}
	if !o.Quiet {
		fmt.Fprintln(w, "Image resized.")
	}
	return nil
}

func parseResizeSize(s string, old int64) (int64, error) {
	sign := 0
	switch {
	case strings.HasPrefix(s, "+"):
		sign, s = 1, s[1:]
	case strings.HasPrefix(s, "-"):
		sign, s = -1, s[1:]
	}
	v, err := ParseSize(s)
	if err != nil {
		return 0, fmt.Errorf("resize: invalid size %q: %w", s, err)
	}
	switch sign {
	case 1:
		v = old + v
	case -1:
		v = old - v
	}
	if v <= 0 {
		// qemu-img resize refuses 0 too ("New image size must be positive").
		return 0, fmt.Errorf("resize: the new image size must be positive")
	}
	return v, nil
}

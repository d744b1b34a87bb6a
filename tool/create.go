package tool

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/thinblk/thinblk/image"
)

// CreateOptions are the flags of `thinblk create`.
type CreateOptions struct {
	// Format is the new image's format (-f); "" means raw.
	Format string
	// Options are -o key=value creation options.
	Options map[string]string
	// Backing and BackingFormat are -b and -F.
	Backing       string
	BackingFormat string
	// Size is the virtual size in bytes; -1 when not given (then a backing
	// file must give it).
	Size int64
	// Quiet (-q) suppresses the "Formatting ..." line.
	Quiet bool
}

// Create makes a new image and then prints qemu-img's line
// "Formatting 'NAME', fmt=FMT size=N ..." to w unless o.Quiet (nothing is
// printed when creation fails). Unlike qemu-img, the size is not rounded up
// to a multiple of 512.
func Create(w io.Writer, name string, o CreateOptions) error {
	format := o.Format
	if format == "" {
		format = "raw"
	}
	if o.Size < 0 && o.Backing == "" {
		return fmt.Errorf("create %s: the image needs a size (or a backing file to take it from)", name)
	}
	size := max(o.Size, 0)
	opts := o.Options
	if opts == nil {
		opts = map[string]string{}
	}
	err := image.Create(name, format, image.CreateOptions{
		Size:          size,
		Options:       opts,
		Backing:       o.Backing,
		BackingFormat: o.BackingFormat,
	})
	if err != nil {
		return err
	}
	if !o.Quiet && o.Size < 0 {
		// The size came from the backing file: report what was made.
		if d, err := image.Open(name, image.Options{Format: format, ReadOnly: true, NoBacking: true}); err == nil {
			size = d.Size()
			d.Close()
		}
	}
	if !o.Quiet {
		var b strings.Builder
		fmt.Fprintf(&b, "Formatting '%s', fmt=%s size=%d", name, format, size)
		if o.Backing != "" {
			fmt.Fprintf(&b, " backing_file=%s", o.Backing)
		}
		if o.BackingFormat != "" {
			fmt.Fprintf(&b, " backing_fmt=%s", o.BackingFormat)
		}
		keys := make([]string, 0, len(o.Options))
		for k := range o.Options {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, " %s=%s", k, o.Options[k])
		}
		fmt.Fprintln(w, b.String())
	}
	return nil
}

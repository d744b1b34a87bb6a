package image

import (
	"fmt"

	"github.com/thinblk/thinblk/block"
)

// Create makes a new image called name in the given format (no probing: the
// format is required). When o.OpenBacking is nil and o.Backing is set, the
// backing file is opened read-only through Open, its name resolved against
// the folder of name. Errors are *block.OpError with Op "create".
func Create(name, format string, o CreateOptions) error {
	if err := create(name, format, o); err != nil {
		return &block.OpError{Op: "create", Node: name, Err: err}
	}
	return nil
}

func create(name, format string, o CreateOptions) error {
	if format == "" {
		return reasonf(block.ErrInvalid, "no format given")
	}
	f, ok := Lookup(format)
	if !ok {
		return reasonf(block.ErrNotSupported, "unknown format %q (known: %s)", format, knownFormats())
	}
	if f.Create == nil {
		return reasonf(block.ErrNotSupported, "format %s cannot create images", format)
	}
	if o.Size < 0 {
		return reasonf(block.ErrInvalid, "negative size %d", o.Size)
	}
	if o.Backing != "" && format == "raw" {
		return reasonf(block.ErrNotSupported, "format raw has no backing files")
	}
	if o.BackingFormat != "" && o.Backing == "" {
		return reasonf(block.ErrInvalid, "a backing format (-F) needs a backing file (-b)")
	}
	if o.OpenBacking == nil {
		o.OpenBacking = func(backingName, backingFormat string) (block.Driver, error) {
			return Open(ResolveBacking(name, backingName), Options{Format: backingFormat, ReadOnly: true})
		}
	}
	if err := f.Create(name, o); err != nil {
		return fmt.Errorf("%s: %w", format, err)
	}
	return nil
}

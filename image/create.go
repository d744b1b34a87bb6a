package image

import (
	"strings"

	"github.com/thinblk/thinblk/block"
)

// Create makes a new image called name in the given format (no probing: the
// format is required). When o.OpenBacking is nil and o.Backing is set, the
// backing file is opened read-only through Open, its name resolved against
// the folder of name, for its size and format only: as qemu-img create
// does, it is opened with ForceShare and NoIO, so that an overlay can be
// made of an image another process writes (a running VM's disk). Errors
// name the file: a *block.OpError with Op "create",
// unless the format's own error already names it.
func Create(name, format string, o CreateOptions) error {
	err := create(name, format, o)
	if err == nil {
		return nil
	}
	if strings.Contains(err.Error(), name) {
		return err // the format's error already names the file
	}
	return &block.OpError{Op: "create", Node: name, Err: err}
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
			return Open(ResolveBacking(name, backingName), Options{Format: backingFormat, ReadOnly: true, ForceShare: true, NoIO: true})
		}
	}
	return f.Create(name, o)
}

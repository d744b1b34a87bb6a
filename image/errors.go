package image

import (
	"fmt"
	"strings"
)

// reasonError is an error whose text is a plain sentence and which still
// matches a block sentinel with errors.Is.
type reasonError struct {
	msg string
	err error // the sentinel
}

func (e *reasonError) Error() string { return e.msg }
func (e *reasonError) Unwrap() error { return e.err }

// reasonf returns an error reading like the formatted message and wrapping
// sentinel.
func reasonf(sentinel error, format string, args ...any) error {
	return &reasonError{msg: fmt.Sprintf(format, args...), err: sentinel}
}

// knownFormats lists registered format names for error messages.
func knownFormats() string {
	fs := Formats()
	if len(fs) == 0 {
		return "none registered"
	}
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.Name
	}
	return strings.Join(names, ", ")
}

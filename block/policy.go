package block

import (
	"fmt"
	"strings"
)

// DiscardMode says what a node does with discard requests from above (the
// qemu -drive discard= option). The zero value is DiscardIgnore: discard is
// off by default for a served disk (DESIGN.md, thin-provisioning rule 1).
type DiscardMode int

const (
	// DiscardIgnore accepts discard requests and does nothing.
	DiscardIgnore DiscardMode = iota
	// DiscardUnmap passes discard requests down.
	DiscardUnmap
)

// ParseDiscardMode accepts qemu's spellings: "ignore" or "off", "unmap" or
// "on" (case-insensitive). Anything else is ErrInvalid.
func ParseDiscardMode(s string) (DiscardMode, error) {
	switch strings.ToLower(s) {
	case "ignore", "off":
		return DiscardIgnore, nil
	case "unmap", "on":
		return DiscardUnmap, nil
	}
	return 0, fmt.Errorf("%w: discard mode %q (want ignore|off|unmap|on)", ErrInvalid, s)
}

// String returns "ignore" or "unmap".
func (m DiscardMode) String() string {
	switch m {
	case DiscardIgnore:
		return "ignore"
	case DiscardUnmap:
		return "unmap"
	}
	return fmt.Sprintf("DiscardMode(%d)", int(m))
}

// DetectZeroes says whether a node looks for all-zero write payloads (the
// qemu -drive detect-zeroes= option). The zero value is DetectZeroesOff.
type DetectZeroes int

const (
	// DetectZeroesOff writes payloads as they are.
	DetectZeroesOff DetectZeroes = iota
	// DetectZeroesOn turns an all-zero Pwrite into WriteZeroes.
	DetectZeroesOn
	// DetectZeroesUnmap turns an all-zero Pwrite into WriteZeroes with
	// MayUnmap when the discard mode is unmap (and acts as On otherwise).
	DetectZeroesUnmap
)

// ParseDetectZeroes accepts "off", "on" and "unmap" (case-insensitive).
// Anything else is ErrInvalid.
func ParseDetectZeroes(s string) (DetectZeroes, error) {
	switch strings.ToLower(s) {
	case "off":
		return DetectZeroesOff, nil
	case "on":
		return DetectZeroesOn, nil
	case "unmap":
		return DetectZeroesUnmap, nil
	}
	return 0, fmt.Errorf("%w: detect-zeroes %q (want off|on|unmap)", ErrInvalid, s)
}

// String returns "off", "on" or "unmap".
func (z DetectZeroes) String() string {
	switch z {
	case DetectZeroesOff:
		return "off"
	case DetectZeroesOn:
		return "on"
	case DetectZeroesUnmap:
		return "unmap"
	}
	return fmt.Sprintf("DetectZeroes(%d)", int(z))
}

// Policy is the thin-provisioning policy a node applies to requests from
// above; see [WithPolicy]. The zero value ignores discards and does not
// detect zeroes.
type Policy struct {
	Discard      DiscardMode
	DetectZeroes DetectZeroes
}

// Validate rejects what qemu rejects when a drive is opened:
// detect-zeroes=unmap without discard=unmap, and values outside the
// defined modes. Both are ErrInvalid. WithPolicy itself accepts any policy
// (treating detect-zeroes=unmap without discard=unmap as on); front ends
// that take the options from users call Validate to fail early, as qemu
// does.
func (p Policy) Validate() error {
	if p.Discard != DiscardIgnore && p.Discard != DiscardUnmap {
		return fmt.Errorf("%w: %v", ErrInvalid, p.Discard)
	}
	if p.DetectZeroes < DetectZeroesOff || p.DetectZeroes > DetectZeroesUnmap {
		return fmt.Errorf("%w: %v", ErrInvalid, p.DetectZeroes)
	}
	if p.DetectZeroes == DetectZeroesUnmap && p.Discard != DiscardUnmap {
		return fmt.Errorf("%w: detect-zeroes=unmap needs discard=unmap", ErrInvalid)
	}
	return nil
}

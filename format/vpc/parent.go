package vpc

import (
	"encoding/binary"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/thinblk/thinblk/block"
)

// parentCandidate is one way a differencing image names its parent.
type parentCandidate struct {
	Code string // platform code, or "name" for the header's Unicode name
	Path string // in this host's notation
}

// decodeUTF16 decodes UTF-16 bytes in the given byte order, stopping at the
// first NUL.
func decodeUTF16(b []byte, order binary.ByteOrder) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := order.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

// windowsToHost turns a Windows path into a slash path: a relative
// ".\dir\name" becomes "dir/name", and an absolute "C:\dir\name" keeps its
// drive letter (it will not open on Linux; it is reported in messages).
func windowsToHost(p string) string {
	p = strings.ReplaceAll(p, `\`, "/")
	for strings.HasPrefix(p, "./") {
		p = p[2:]
	}
	return p
}

// parentCandidates reads the parent locators of a differencing image, in
// the order they should be tried: the relative Windows path (W2ru), the Mac
// OS X URL (MacX), the absolute Windows path (W2ku), the deprecated ANSI
// codes (Wi2r, Wi2k), and last the parent's Unicode name from the header
// (a bare file name, resolved next to the image). Each locator's data is
// bounds-checked against the file size; a locator that is out of bounds is
// an error.
func (img *Image) parentCandidates() ([]parentCandidate, error) {
	order := map[string]int{"W2ru": 0, "MacX": 1, "W2ku": 2, "Wi2r": 3, "Wi2k": 4}
	var found [5][]parentCandidate
	fileSize := img.file.Size()
	for i, loc := range img.dyn.Locators {
		code := string(loc.PlatformCode[:])
		rank, known := order[code]
		if loc.PlatformCode == [4]byte{} || !known || loc.PlatformDataLength == 0 {
			continue
		}
		n := int64(loc.PlatformDataLength)
		if n > maxLocatorData || loc.PlatformDataOffset > uint64(fileSize) || n > fileSize-int64(loc.PlatformDataOffset) {
			return nil, fmt.Errorf("vpc: %w: parent locator %d (%s) of %d bytes at %d does not fit a file of %d bytes",
				block.ErrCorrupt, i, code, n, loc.PlatformDataOffset, fileSize)
		}
		b := make([]byte, n)
		if err := img.file.Pread(b, int64(loc.PlatformDataOffset)); err != nil {
			return nil, fmt.Errorf("vpc: reading parent locator %d: %w", i, err)
		}
		var p string
		switch code {
		case "W2ru", "W2ku":
			p = windowsToHost(decodeUTF16(b, binary.LittleEndian))
		case "Wi2r", "Wi2k":
			p = windowsToHost(strings.TrimRight(string(b), "\x00"))
		case "MacX":
			s := strings.TrimRight(string(b), "\x00")
			if !utf8.ValidString(s) {
				continue
			}
			if u, err := url.Parse(s); err == nil && u.Scheme == "file" {
				s = u.Path
			}
			p = s
		}
		if p != "" {
			found[rank] = append(found[rank], parentCandidate{Code: code, Path: p})
		}
	}
	var out []parentCandidate
	for _, f := range found {
		out = append(out, f...)
	}
	if name := decodeUTF16(img.dyn.ParentUnicodeRaw[:], binary.BigEndian); name != "" {
		out = append(out, parentCandidate{Code: "name", Path: windowsToHost(name)})
	}
	return out, nil
}

// openParent opens the first parent candidate that opens.
func (img *Image) openParent(openBacking func(name, format string) (block.Driver, error)) error {
	cands, err := img.parentCandidates()
	if err != nil {
		return err
	}
	if len(cands) == 0 {
		return fmt.Errorf("vpc: %w: differencing image without a usable parent locator", block.ErrCorrupt)
	}
	var errs []string
	for _, c := range cands {
		d, err := openBacking(c.Path, "")
		if err == nil {
			if err = img.checkParentID(d); err == nil {
				img.backing = d
				img.parentName = c.Path
				return nil
			}
			d.Close()
		}
		errs = append(errs, fmt.Sprintf("%s %q: %v", c.Code, c.Path, err))
	}
	return fmt.Errorf("vpc: cannot open the parent image (tried %s)", strings.Join(errs, "; "))
}

// checkParentID checks that a VHD parent is the image the child was made
// over: its footer's unique ID must be the dynamic header's parent unique
// ID. Skipped when the child records no ID (all zeros), for parents that are
// not VHD images, and with the option parent-linkage-check=off.
func (img *Image) checkParentID(parent block.Driver) error {
	if img.skipParentCheck || img.dyn.ParentUniqueID == [16]byte{} {
		return nil
	}
	p, ok := block.As[*Image](parent)
	if !ok || p.footer.UniqueID == img.dyn.ParentUniqueID {
		return nil
	}
	return fmt.Errorf("vpc: %w: the parent's unique ID %x is not the one the child records (%x): another image, or one recreated since (open with -o parent-linkage-check=off to read anyway)",
		block.ErrCorrupt, p.footer.UniqueID, img.dyn.ParentUniqueID)
}

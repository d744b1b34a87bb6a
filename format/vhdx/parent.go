package vhdx

import (
	"fmt"
	"strings"

	"github.com/thinblk/thinblk/block"
)

// parentPaths lists the parent locator's paths in the order to try them:
// relative_path, absolute_win32_path, volume_path, with Windows separators
// turned into slashes and a leading ".\" dropped.
func (img *Image) parentPaths() []string {
	var out []string
	for _, k := range []string{"relative_path", "absolute_win32_path", "volume_path"} {
		p, ok := img.meta.ParentLocator[k]
		if !ok || p == "" {
			continue
		}
		p = strings.ReplaceAll(p, `\`, "/")
		for strings.HasPrefix(p, "./") {
			p = p[2:]
		}
		out = append(out, p)
	}
	return out
}

// openParent opens the first parent path that opens.
func (img *Image) openParent(openBacking func(name, format string) (block.Driver, error)) error {
	paths := img.parentPaths()
	if len(paths) == 0 {
		return fmt.Errorf("vhdx: %w: the parent locator names no path (keys relative_path, absolute_win32_path, volume_path)", block.ErrCorrupt)
	}
	var errs []string
	for _, p := range paths {
		d, err := openBacking(p, "")
		if err == nil {
			if err = img.checkLinkage(d); err == nil {
				img.backing, img.parentName = d, p
				return nil
			}
			d.Close()
		}
		errs = append(errs, fmt.Sprintf("%q: %v", p, err))
	}
	return fmt.Errorf("vhdx: cannot open the parent image (tried %s)", strings.Join(errs, "; "))
}

// checkLinkage checks that a VHDX parent is the one the child was made
// over: its DataWriteGuid must be the locator's parent_linkage (or
// parent_linkage2). A parent written since then would show the child stale
// data. The check is skipped with the option parent-linkage-check=off, and
// for parents that are not VHDX images.
func (img *Image) checkLinkage(parent block.Driver) error {
	if img.skipLinkage {
		return nil
	}
	p, ok := block.As[*Image](parent)
	if !ok {
		return nil
	}
	got := p.header.DataWriteGUID
	for _, k := range []string{"parent_linkage", "parent_linkage2"} {
		if guidMatches(img.meta.ParentLocator[k], got) {
			return nil
		}
	}
	return fmt.Errorf("vhdx: %w: the parent's DataWriteGuid %s is not the child's parent_linkage %s: the parent was written after the child was made (open with -o parent-linkage-check=off to read anyway)",
		block.ErrCorrupt, got, img.meta.ParentLocator["parent_linkage"])
}

// guidMatches compares a GUID string ("{...}" or bare, any case) with g.
func guidMatches(s string, g GUID) bool {
	s = strings.ToLower(strings.Trim(strings.TrimSpace(s), "{}"))
	return s != "" && s == g.String()
}

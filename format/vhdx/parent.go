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
			img.backing, img.parentName = d, p
			return nil
		}
		errs = append(errs, fmt.Sprintf("%q: %v", p, err))
	}
	return fmt.Errorf("vhdx: cannot open the parent image (tried %s)", strings.Join(errs, "; "))
}

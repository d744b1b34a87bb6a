package image

import (
	"path/filepath"
	"strings"
)

// ResolveBacking returns the name under which a backing file recorded in
// overlay as backing is opened: absolute paths and URLs unchanged, a relative
// path joined to the folder of overlay (as qemu does: "dir/overlay.qcow2"
// with backing "base.raw" opens "dir/base.raw"; an overlay without a folder
// leaves the name as it is).
func ResolveBacking(overlay, backing string) string {
	if backing == "" || IsURL(backing) || filepath.IsAbs(backing) || IsURL(overlay) {
		return backing
	}
	i := strings.LastIndexByte(overlay, '/')
	if i < 0 {
		return backing
	}
	return overlay[:i+1] + backing
}

// chainKey is the identity of an image in a backing chain, for loop
// detection: a URL as given, a path made absolute with symlinks resolved
// (best effort).
func chainKey(name string) string {
	if IsURL(name) {
		return name
	}
	p, err := filepath.Abs(name)
	if err != nil {
		return name
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

// ChainKey returns the identity of an image name for loop detection: a URL
// as given, a path made absolute with symlinks resolved (best effort). Two
// names with the same key open the same image.
func ChainKey(name string) string { return chainKey(name) }

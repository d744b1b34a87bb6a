package image

import (
	"fmt"
	"strings"

	"github.com/thinblk/thinblk/protocol/file"
)

// Options says how Open opens an image.
type Options struct {
	// Format is the format name (-f); "" probes the image's first bytes.
	// An explicit format always wins over probing.
	Format string
	// ReadOnly opens every node of the chain read-only.
	ReadOnly bool
	// Cache is qemu's cache mode: "writeback" (the default, also ""),
	// "none" (O_DIRECT), "writethrough" (every write is FUA), "directsync"
	// (O_DIRECT and every write FUA) or "unsafe" (flushes and FUA are
	// dropped at the storage layer).
	Cache string
	// Discard is the discard mode: "unmap" (also "on", and the default "")
	// passes discards down to storage; "ignore" (also "off") drops them at
	// every layer. Servers that want thin-provisioning policy rule 1 pass
	// "ignore" (or apply their own block.WithPolicy).
	Discard string
	// DetectZeroes is "off" (default, also ""), "on" or "unmap": all-zero
	// writes become write-zeroes (with unmap only when Discard is unmap).
	DetectZeroes string
	// NoBacking opens the image without its backing chain (info, rebase
	// -u); unallocated ranges then read as zeros.
	NoBacking bool
	// Options are format driver options (key=value), passed to the
	// format's Open.
	Options map[string]string

	// Image locking, compatible with QEMU's (see protocol/file). Every
	// file of the chain is locked: an image with a format (qcow2, ...)
	// uses consistent read (plus write and resize when writable) and
	// refuses write and resize to other processes; a raw image uses
	// consistent read (plus write) and refuses only Unshare; backing files
	// are read-only users.

	// ForceShare (-U) refuses nothing to other processes, for the image
	// and its backing chain, so it opens while another process writes it
	// (what is read may then be inconsistent). Only with ReadOnly.
	ForceShare bool
	// NoIO says the caller reads metadata only (info): no consistent-read
	// permission is taken, so a raw image is not locked at all.
	NoIO bool
	// Unshare adds permissions refused to other processes: convert
	// sources refuse file.PermWrite|file.PermResize (then so do raw
	// backing files), exports file.PermResize.
	Unshare file.Perm
	// Perm adds permissions used, e.g. file.PermResize to resize a raw
	// image.
	Perm file.Perm
	// Locking is protocol/file's locking mode: "auto" (default, also ""),
	// "on" or "off".
	Locking string
}

// cacheMode is a parsed Options.Cache.
type cacheMode struct {
	direct       bool // O_DIRECT on the storage node
	writethrough bool // every write is FUA at the top
	noFlush      bool // flush and FUA dropped at the storage node
}

// parseCache maps qemu's cache mode names to their effects.
func parseCache(s string) (cacheMode, error) {
	switch strings.ToLower(s) {
	case "", "writeback":
		return cacheMode{}, nil
	case "none", "off":
		return cacheMode{direct: true}, nil
	case "writethrough":
		return cacheMode{writethrough: true}, nil
	case "directsync":
		return cacheMode{direct: true, writethrough: true}, nil
	case "unsafe":
		return cacheMode{noFlush: true}, nil
	}
	return cacheMode{}, fmt.Errorf("invalid cache mode %q (want writeback, none, writethrough, directsync or unsafe)", s)
}

// ParseKeyValues parses qemu's "-o" syntax: comma separated key=value pairs,
// where ",," is a literal comma inside a value. Several -o flags may be
// merged by calling it for each and combining the maps; a key given twice
// takes the last value. A pair without "=" is an error.
func ParseKeyValues(s string) (map[string]string, error) {
	out := map[string]string{}
	if s == "" {
		return out, nil
	}
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == ',' {
			if i+1 < len(s) && s[i+1] == ',' {
				cur.WriteByte(',')
				i++
				continue
			}
			parts = append(parts, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteByte(s[i])
	}
	parts = append(parts, cur.String())
	for _, p := range parts {
		if p == "" {
			continue
		}
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("invalid option %q: want key=value", p)
		}
		out[k] = v
	}
	return out, nil
}

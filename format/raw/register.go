package raw

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/protocol/file"
)

func init() {
	image.Register(image.Format{Name: "raw", Open: openImage, Create: createImage})
}

// openImage is the registry's Open: it reads the "offset" and "size" driver
// options.
func openImage(f block.Driver, o image.FormatOpen) (block.Driver, error) {
	offset, size := int64(0), int64(-1)
	for _, key := range sortedKeys(o.Options) {
		v, err := parseBytes(o.Options[key])
		switch key {
		case "offset":
			offset = v
		case "size":
			size = v
		default:
			return nil, fmt.Errorf("raw: %w: unknown option %q (raw takes offset and size)", block.ErrInvalid, key)
		}
		if err != nil {
			return nil, fmt.Errorf("raw: %w: option %s=%q: %v", block.ErrInvalid, key, o.Options[key], err)
		}
	}
	return Open(f, offset, size)
}

// createImage is the registry's Create: a file of o.Size bytes with the
// "preallocation" creation option.
func createImage(name string, o image.CreateOptions) error {
	if o.Backing != "" {
		return fmt.Errorf("raw: %w: a raw image has no backing file", block.ErrNotSupported)
	}
	prealloc := file.PreallocOff
	for _, key := range sortedKeys(o.Options) {
		switch key {
		case "preallocation":
			prealloc = o.Options[key]
		default:
			return fmt.Errorf("raw: %w: unknown creation option %q (raw takes preallocation)", block.ErrInvalid, key)
		}
	}
	if o.Size < 0 {
		return fmt.Errorf("raw: %w: negative size %d", block.ErrInvalid, o.Size)
	}
	return file.Create(name, o.Size, prealloc)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// parseBytes parses a non-negative byte count with an optional binary
// suffix k, M, G, T (or K, m, g, t; an optional trailing "B" or "iB").
func parseBytes(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSpace(s), "iB"), "B")
	shift := 0
	if t != "" {
		switch t[len(t)-1] {
		case 'k', 'K':
			shift = 10
		case 'm', 'M':
			shift = 20
		case 'g', 'G':
			shift = 30
		case 't', 'T':
			shift = 40
		}
		if shift != 0 {
			t = t[:len(t)-1]
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("not a byte count")
	}
	if v < 0 || v > (1<<62)>>shift {
		return 0, fmt.Errorf("out of range")
	}
	return v << shift, nil
}

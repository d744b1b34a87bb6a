package image

import (
	"sort"
	"sync"

	"github.com/thinblk/thinblk/block"
)

// Format is an image format driver: it opens over a protocol node (a file, a
// block device, an NBD export) and may create new images. Format packages
// register themselves with Register from an init function; programs import
// them for that effect (cmd/thinblk imports every format).
type Format struct {
	// Name is the format name users pass with -f ("raw", "qcow2", ...).
	Name string
	// Probe scores the first bytes of an image (up to ProbeSize; fewer for a
	// smaller image): 0 means "not this format", 100 "certainly this
	// format". Raw never probes; it is the fallback. nil means the format is
	// never probed.
	Probe func(head []byte) int
	// Open opens the format over file. On success the returned node owns
	// file (closing it closes file); on failure the caller closes file.
	Open func(file block.Driver, o FormatOpen) (block.Driver, error)
	// Create makes a new image at name (nil: the format cannot create).
	Create func(name string, o CreateOptions) error
}

// ProbeSize is how many leading bytes Probe is given at most.
const ProbeSize = 4096

// FormatOpen is what a format's Open is told.
type FormatOpen struct {
	// Name is the image's name as the user gave it, for messages and to
	// resolve relative backing file names (relative to its folder).
	Name     string
	ReadOnly bool
	// NoBacking opens the image without its backing chain (rebase -u,
	// info); reads of unallocated ranges then return zeros.
	NoBacking bool
	// Options are driver options (-o key=value style), format specific.
	Options map[string]string
	// ForceShare (-U): files the format opens itself (vmdk extents) refuse
	// nothing to other processes; otherwise read-only ones refuse writers.
	ForceShare bool
	// OpenBacking opens a backing file by the name recorded in the image,
	// with a format ("" means probe). The opener resolves a relative name
	// against the folder of Name. The backing node is opened read-only and
	// owned by the caller (the overlay closes it on Close).
	OpenBacking func(backingName, format string) (block.Driver, error)
}

// CreateOptions is what a format's Create is told.
type CreateOptions struct {
	// Size is the virtual size in bytes; 0 with a backing file means "the
	// backing file's size".
	Size int64
	// Options are -o key=value creation options (cluster_size, compat,
	// preallocation, ...). A format rejects keys it does not know.
	Options map[string]string
	// Backing and BackingFormat name a backing file (-b, -F).
	Backing       string
	BackingFormat string
	// OpenBacking opens the backing file (for its size and format), as in
	// FormatOpen.
	OpenBacking func(backingName, format string) (block.Driver, error)
}

var (
	formatsMu sync.RWMutex
	formats   = map[string]Format{}
)

// Register makes a format available by name. It panics on a duplicate name
// (a programming error at init time).
func Register(f Format) {
	formatsMu.Lock()
	defer formatsMu.Unlock()
	if _, dup := formats[f.Name]; dup {
		panic("image: format registered twice: " + f.Name)
	}
	formats[f.Name] = f
}

// Lookup returns the format registered under name.
func Lookup(name string) (Format, bool) {
	formatsMu.RLock()
	defer formatsMu.RUnlock()
	f, ok := formats[name]
	return f, ok
}

// Formats returns the registered formats sorted by name.
func Formats() []Format {
	formatsMu.RLock()
	defer formatsMu.RUnlock()
	out := make([]Format, 0, len(formats))
	for _, f := range formats {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

package image

import (
	"errors"
	"io/fs"
	"os"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/protocol/file"
)

// MaxChainDepth bounds a backing chain; deeper chains are refused (they are
// almost certainly a loop through names the loop check cannot see).
const MaxChainDepth = 256

// Open opens the image called name: a path (regular file or block device)
// or a URL of a registered protocol ("nbd://..."). It opens the storage
// node, takes the format from o.Format or probes it (raw when no format
// claims the first bytes), opens the format over the storage node and,
// unless o.NoBacking, its backing chain read-only, with relative backing
// names resolved against the folder of the image that records them.
//
// A probed-raw image never has a backing file, and writes that would make
// its first bytes probe as another format are refused (DESIGN.md rule 7).
// Backing loops and chains deeper than MaxChainDepth are errors.
//
// The returned node is byte-addressable (unaligned requests are served by
// read-modify-write when the storage needs alignment) and carries the cache,
// discard and detect-zeroes policy of o. Closing it closes the whole chain.
// Errors are *block.OpError with Op "open" wrapping the cause.
//
// Every file of the chain is locked against other processes as QEMU locks
// it (see the locking fields of Options): an image another process uses in
// a conflicting way fails to open with a *file.LockError (errors.Is
// file.ErrLocked) naming the locked file. Opens within one process never
// conflict with each other.
func Open(name string, o Options) (block.Driver, error) {
	if name == "" {
		return nil, &block.OpError{Op: "open", Node: `""`, Err: reasonf(block.ErrInvalid, "empty image name")}
	}
	return openChain(name, o, map[string]bool{}, 0)
}

// openChain opens name as one layer of a chain; seen holds the chain keys
// of the layers above it.
func openChain(name string, o Options, seen map[string]bool, depth int) (block.Driver, error) {
	d, err := openLayer(name, o, seen, depth)
	if err != nil {
		if op, ok := err.(*block.OpError); ok && op.Op == "open" && op.Node == name {
			return nil, err
		}
		return nil, &block.OpError{Op: "open", Node: name, Err: err}
	}
	return d, nil
}

func openLayer(name string, o Options, seen map[string]bool, depth int) (block.Driver, error) {
	if depth > MaxChainDepth {
		return nil, reasonf(block.ErrInvalid, "backing chain deeper than %d images", MaxChainDepth)
	}
	cache, err := parseCache(o.Cache)
	if err != nil {
		return nil, reasonf(block.ErrInvalid, "%v", err)
	}
	policy, unmap, err := parsePolicy(o)
	if err != nil {
		return nil, err
	}
	if o.Format != "" {
		if _, ok := Lookup(o.Format); !ok {
			return nil, reasonf(block.ErrNotSupported, "unknown format %q (known: %s)", o.Format, knownFormats())
		}
	}
	key := chainKey(name)
	if seen[key] {
		return nil, reasonf(block.ErrInvalid, "backing file loop: %s is already in the chain", name)
	}

	if o.ForceShare && !o.ReadOnly {
		return nil, reasonf(block.ErrInvalid, "force-share=on can only be used with read-only images")
	}
	// Lock as a raw image until the format is known (QEMU's raw takes the
	// least), then as a format with metadata when it is not raw.
	storage, fileNode, err := openStorage(name, o, o.Format != "" && o.Format != "raw", cache, unmap)
	if err != nil {
		return nil, err
	}

	format, probed := o.Format, false
	if format == "" {
		head, err := readHead(storage)
		if err != nil {
			storage.Close()
			return nil, err
		}
		format, probed = Probe(head), true
	}
	f, ok := Lookup(format)
	if !ok {
		storage.Close()
		return nil, reasonf(block.ErrNotSupported, "unknown format %q (known: %s)", format, knownFormats())
	}
	if fileNode != nil && o.Format == "" && format != "raw" {
		if err := fileNode.SetPerm(lockPerms(o, true)); err != nil {
			storage.Close()
			return nil, err
		}
	}
	if f.Open == nil {
		storage.Close()
		return nil, reasonf(block.ErrNotSupported, "format %s cannot open images", format)
	}

	probedRawImage := probed && format == "raw"
	fo := FormatOpen{
		Name:       name,
		ReadOnly:   o.ReadOnly,
		NoBacking:  o.NoBacking || probedRawImage,
		Options:    o.Options,
		ForceShare: o.ForceShare,
	}
	fo.OpenBacking = func(backingName, backingFormat string) (block.Driver, error) {
		if fo.NoBacking {
			return nil, reasonf(block.ErrNotSupported, "%s is opened without its backing chain", name)
		}
		if backingName == "" {
			return nil, reasonf(block.ErrInvalid, "empty backing file name")
		}
		inner := map[string]bool{key: true}
		for k := range seen {
			inner[k] = true
		}
		bo := Options{
			Format:     backingFormat,
			ReadOnly:   true,
			Cache:      o.Cache,
			Discard:    o.Discard,
			ForceShare: o.ForceShare,
			NoIO:       o.NoIO,
			Locking:    o.Locking,
		}
		// QEMU: a backing file shares write and resize only when the
		// overlay's users do; formats refuse them anyway.
		if o.Unshare&file.PermWrite != 0 {
			bo.Unshare = file.PermWrite | file.PermResize
		}
		return openChain(ResolveBacking(name, backingName), bo, inner, depth+1)
	}
	node, err := f.Open(storage, fo)
	if err != nil {
		storage.Close()
		return nil, err
	}

	if probedRawImage && !o.ReadOnly {
		node = &probedRaw{wrapper: wrapper{node}}
	}
	if cache.writethrough && !o.ReadOnly {
		node = writethrough{wrapper{node}}
	}
	if depth == 0 && policy != nil {
		node = policy(node)
	}
	return block.Align(node), nil
}

// openStorage opens the protocol node under a format: a URL through its
// registered opener, a path through protocol/file, locked with the
// permissions of a format with metadata when metadata is set, of raw
// otherwise (lockPerms). It returns the file node too (nil for URLs), so
// that its locks can change once the format is known. Paths that do not
// exist or are folders get clear errors.
func openStorage(name string, o Options, metadata bool, cache cacheMode, unmap bool) (block.Driver, *file.Node, error) {
	var d block.Driver
	var fileNode *file.Node
	if IsURL(name) {
		var err error
		if d, err = openURL(name, o.ReadOnly); err != nil {
			return nil, nil, err
		}
	} else {
		st, err := os.Stat(name)
		if err != nil {
			return nil, nil, pathCause(err)
		}
		if st.IsDir() {
			return nil, nil, reasonf(block.ErrInvalid, "is a directory, not an image file or block device")
		}
		perm, unshare := lockPerms(o, metadata)
		n, err := file.Open(name, file.Options{
			ReadOnly:   o.ReadOnly,
			Direct:     cache.direct,
			Discard:    unmap,
			Growable:   !o.ReadOnly,
			Locking:    o.Locking,
			Perm:       perm,
			Unshare:    unshare,
			NoIO:       o.NoIO,
			ForceShare: o.ForceShare,
		})
		if err != nil {
			return nil, nil, pathCause(err)
		}
		d, fileNode = n, n
	}
	if cache.noFlush {
		d = noFlush{wrapper{d}}
	}
	return block.Align(d), fileNode, nil
}

// lockPerms returns the permissions an image's file is locked with, as
// QEMU 7.2 takes them (see protocol/file): consistent read unless NoIO,
// write when writable; a format with metadata (metadata set) also resize
// when writable, and refuses write and resize to others; Perm and Unshare
// of o are added. ForceShare is applied by protocol/file.
func lockPerms(o Options, metadata bool) (perm, unshare file.Perm) {
	if !o.NoIO {
		perm |= file.PermConsistentRead
	}
	if !o.ReadOnly {
		perm |= file.PermWrite
		if metadata {
			perm |= file.PermResize
		}
	}
	unshare = o.Unshare
	if metadata {
		unshare |= file.PermWrite | file.PermResize
	}
	return perm | o.Perm, unshare
}

// pathCause strips the *fs.PathError around an error so that messages name
// the file once.
func pathCause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

package tool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/copy"
	"github.com/thinblk/thinblk/format/qcow2"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/protocol/file"
)

// ConvertOptions are the flags of `thinblk convert`, with qemu-img
// convert's meaning.
type ConvertOptions struct {
	// SrcFormat (-f) is the format of every source; "" probes each.
	SrcFormat string
	// OutFormat (-O) is the target's format; "" means raw.
	OutFormat string
	// Options (-o) are creation options for the target.
	Options map[string]string
	// Compress (-c) writes compressed clusters (qcow2).
	Compress bool
	// SparseSize (-S) is the zero-detection granularity in bytes; 0 means
	// "fully allocate the target" and -1 the default (4 KiB).
	SparseSize int64
	// Parallel (-m) is the number of requests in flight (0 = copy.DefaultParallel, 4).
	Parallel int
	// OutOfOrder (-W) allows writes out of target order.
	OutOfOrder bool
	// NoCreate (-n) writes into an existing target instead of creating it.
	NoCreate bool
	// TargetIsZero (--target-is-zero, needs -n) promises the existing
	// target reads zeros: zero ranges are skipped.
	TargetIsZero bool
	// Backing (-B) makes the new target an overlay of this file, and only
	// what differs from it is written; BackingFormat (-F) is its format.
	Backing, BackingFormat string
	// SrcCache (-T) and DstCache (-t) are qemu cache modes; the target's
	// default is "unsafe" (no flush), as for qemu-img convert.
	SrcCache, DstCache string
	// Snapshot (-l) selects an internal snapshot of the (qcow2) source:
	// "ID_OR_NAME", or "snapshot.id=ID[,snapshot.name=NAME]".
	Snapshot string
	// Progress (-p) prints progress to the progress writer; Quiet (-q)
	// suppresses it.
	Progress, Quiet bool
	// Stats (--stats) prints a summary line at the end.
	Stats bool
	// ForceShare (-U) opens the sources although another process writes
	// them. Without it a source, like qemu-img's, refuses write and resize
	// to other processes while it is copied (see image.Options).
	ForceShare bool
}

// Convert copies the images srcs, laid end to end, into dst, as qemu-img
// convert does: dst is created (unless o.NoCreate) with the sources' total
// size, and the copy is sparse (see package copy). Zeros are skipped, not
// written, when the target is known to read zeros: a freshly created image
// file without backing, --target-is-zero, or an existing target whose own
// status says it is all zeros. With -B, a source whose backing chain holds
// the new backing file is copied only above it; otherwise what the source
// reads is compared with the backing file and only differences are written.
// Progress lines go to progress; the --stats line to w. On failure after
// the copy started, the error says the target is incomplete.
func Convert(w, progress io.Writer, srcs []string, dst string, o ConvertOptions) (err error) {
	if len(srcs) == 0 {
		return errors.New("convert: no source image")
	}
	if err := checkConvertFlags(o); err != nil {
		return err
	}
	outFmt := o.OutFormat
	if outFmt == "" {
		outFmt = "raw"
	}

	var nodes []block.Driver
	defer func() {
		for _, n := range nodes {
			n.Close()
		}
	}()
	var sources []copy.Source
	var total int64
	snapOpts, err := snapshotOptions(o.Snapshot)
	if err != nil {
		return err
	}
	for _, name := range srcs {
		d, err := image.Open(name, image.Options{Format: o.SrcFormat, ReadOnly: true, Cache: o.SrcCache,
			Unshare: file.PermWrite | file.PermResize, ForceShare: o.ForceShare, Options: snapOpts})
		if err != nil {
			if snapOpts != nil {
				return fmt.Errorf("convert: Failed to load snapshot '%s' of %s: %w", o.Snapshot, name, err)
			}
			return err
		}
		nodes = append(nodes, d)
		sources = append(sources, copy.Source{Node: d, Len: d.Size(), Name: name})
		total += d.Size()
	}

	if !o.NoCreate {
		co := image.CreateOptions{Size: total, Options: o.Options, Backing: o.Backing, BackingFormat: o.BackingFormat}
		if co.Options == nil {
			co.Options = map[string]string{}
		}
		if err := image.Create(dst, outFmt, co); err != nil {
			return err
		}
	}
	cache := o.DstCache
	if cache == "" {
		cache = "unsafe"
	}
	for i, src := range srcs {
		if o.NoCreate && (image.ChainKey(src) == image.ChainKey(dst) || chainNode(nodes[i], src, dst) != nil) {
			// Opens within one process do not lock each other out; QEMU's
			// do, and refuse a target that is a source or in the backing
			// chain of one.
			return fmt.Errorf("convert: %s: %w", dst, &file.LockError{Name: dst, Perm: file.PermWrite})
		}
	}
	target, err := image.Open(dst, image.Options{Format: outFmt, Cache: cache})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := target.Close(); cerr != nil && err == nil {
			err = &block.OpError{Op: "close", Node: dst, Err: cerr}
		}
	}()
	if target.Size() < total {
		return fmt.Errorf("convert: target %s is too small: %d bytes for %d bytes of source", dst, target.Size(), total)
	}

	co := copy.Options{
		SparseSize:   o.SparseSize,
		Parallel:     o.Parallel,
		OutOfOrder:   o.OutOfOrder,
		Compress:     o.Compress,
		TargetName:   dst,
		TargetIsZero: o.TargetIsZero,
		Preallocated: !o.NoCreate && preallocated(o.Options),
	}
	switch {
	case o.SparseSize == 0:
		co.SparseSize = copy.FullyAllocate
	case o.SparseSize < 0:
		co.SparseSize = 0
	}
	if o.Backing != "" {
		// The new overlay does not read zeros: its backing shows through.
		if len(srcs) == 1 {
			sources[0].Base = chainNode(nodes[0], srcs[0], image.ResolveBacking(dst, o.Backing))
		}
		if sources[0].Base == nil || len(srcs) > 1 {
			b := block.BackingOf(target)
			if b == nil {
				return fmt.Errorf("convert: target %s has no backing file", dst)
			}
			co.Backing = b
		}
	} else if !o.NoCreate && !isDevice(dst) {
		co.TargetIsZero = true // a fresh image file without backing reads zeros
	} else if !co.TargetIsZero {
		co.TargetIsZero = readsZeros(target)
	}

	var prog *copy.Progress
	if o.Progress && !o.Quiet {
		prog = copy.NewProgress(progress, IsTerminal(progress))
		co.Progress = prog.Update
	}
	st, err := copy.RunSources(context.Background(), sources, target, co)
	if prog != nil {
		prog.Done()
	}
	if err == nil {
		if ferr := target.Flush(); ferr != nil {
			err = &block.OpError{Op: "flush", Node: dst, Err: ferr}
		}
	}
	if err != nil {
		return fmt.Errorf("convert: %w (target %s is incomplete)", err, dst)
	}
	if o.Stats {
		fmt.Fprintf(w, "read %d bytes, wrote %d bytes, zeroed %d bytes, skipped %d bytes\n",
			st.Read, st.Written, st.Zeroed, st.Skipped)
	}
	return nil
}

// checkConvertFlags refuses the flag combinations qemu-img refuses.
func checkConvertFlags(o ConvertOptions) error {
	switch {
	case o.TargetIsZero && !o.NoCreate:
		return errors.New("convert: --target-is-zero requires use of -n flag")
	case o.Compress && o.OutOfOrder:
		return errors.New("convert: out of order write (-W) and compress (-c) are mutually exclusive")
	case o.NoCreate && o.Backing != "":
		return errors.New("convert: -B cannot be used with -n (the existing target keeps its backing file)")
	case o.BackingFormat != "" && o.Backing == "":
		return errors.New("convert: -F needs -B")
	case o.Parallel < 0 || o.Parallel > 64:
		return fmt.Errorf("convert: -m %d: want 1 to 64 requests in flight", o.Parallel)
	case o.NoCreate && len(o.Options) > 0:
		return errors.New("convert: -o cannot be used with -n (the target exists)")
	}
	return nil
}

// preallocated reports whether creation options make every cluster of a
// new image allocated (qcow2 preallocation=metadata, falloc or full).
func preallocated(opts map[string]string) bool {
	switch opts["preallocation"] {
	case "metadata", "falloc", "full":
		return true
	}
	return false
}

// snapshotOptions turns convert -l into the qcow2 open options that show
// an internal snapshot: qemu's "snapshot.id=ID,snapshot.name=NAME" form,
// or a plain ID-or-name.
func snapshotOptions(l string) (map[string]string, error) {
	if l == "" {
		return nil, nil
	}
	if !strings.HasPrefix(l, "snapshot.") {
		return map[string]string{qcow2.OptionSnapshot: l}, nil
	}
	kv, err := image.ParseKeyValues(l)
	if err != nil {
		return nil, fmt.Errorf("convert: -l %s: %w", l, err)
	}
	for k := range kv {
		if k != qcow2.OptionSnapshotID && k != qcow2.OptionSnapshotName {
			return nil, fmt.Errorf("convert: -l %s: unknown key %q (want snapshot.id and snapshot.name)", l, k)
		}
	}
	return kv, nil
}

// chainNode returns the node of top's backing chain (below top) that is the
// image called want, or nil. name is top's image name; backing names are
// resolved as image.Open resolves them.
func chainNode(top block.Driver, name, want string) block.Driver {
	key := image.ChainKey(want)
	d := top
	for range image.MaxChainDepth {
		bf, ok := block.As[image.BackingFiler](d)
		if !ok {
			return nil
		}
		bname, _ := bf.BackingFile()
		next := block.BackingOf(d)
		if bname == "" || next == nil {
			return nil
		}
		name = image.ResolveBacking(name, bname)
		if image.ChainKey(name) == key {
			return next
		}
		d = next
	}
	return nil
}

// readsZeros reports whether d (without backing) reads zeros everywhere
// according to its own status (zero runs, and unallocated runs when the
// node says those read as zeros): then an existing target needs no zeroing.
func readsZeros(d block.Driver) bool {
	if block.BackingOf(d) != nil || !d.Caps().BlockStatus {
		return false
	}
	info, err := d.Info()
	if err != nil {
		return false
	}
	for off := int64(0); off < d.Size(); {
		e, err := d.BlockStatus(off, min(d.Size()-off, statusWindow))
		if err != nil || e.Len <= 0 {
			return false
		}
		zero := e.Status&block.Zero != 0 || (!e.Status.Present() && info.UnallocatedReadsZero)
		if !zero {
			return false
		}
		off += e.Len
	}
	return true
}

// isDevice reports whether name is a block or character device, whose old
// content "creating" an image on it does not clear.
func isDevice(name string) bool {
	st, err := os.Stat(name)
	return err == nil && st.Mode()&os.ModeDevice != 0
}

// IsTerminal reports whether w is a character device (a terminal), for
// progress bars.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

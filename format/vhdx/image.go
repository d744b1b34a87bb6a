package vhdx

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
)

func init() {
	image.Register(image.Format{
		Name:   "vhdx",
		Probe:  Probe,
		Open:   func(file block.Driver, o image.FormatOpen) (block.Driver, error) { return Open(file, o) },
		Create: Create,
	})
}

// Probe recognises the file identifier signature.
func Probe(head []byte) int {
	if len(head) >= 8 && string(head[:8]) == fileSignature {
		return 100
	}
	return 0
}

// Image is an opened VHDX image. See the package documentation.
type Image struct {
	file   block.Driver
	header *Header
	// headerOffset is where the current header is (header1Offset or
	// header2Offset); headerUpdated is set once the first write updated it.
	headerOffset  int64
	headerUpdated atomic.Bool // set under allocMu
	meta          *Metadata
	geo           geometry
	batStart      int64 // file offset of the BAT
	size          int64
	readOnly      bool
	logState      string // "" (clean), "replayed in memory" or "dirty, not replayed"

	// batMu guards bat; allocMu serializes allocating writes, fileEnd and
	// the header update.
	batMu   sync.RWMutex
	bat     []uint64
	allocMu sync.Mutex
	fileEnd int64
	// dirtyBAT holds the BAT indexes whose entries changed in memory and
	// are not yet in the file (guarded by allocMu).
	dirtyBAT map[int64]bool

	backing     block.Driver
	parentName  string
	skipLinkage bool // parent-linkage-check=off
}

var (
	_ block.Driver       = (*Image)(nil)
	_ block.Backed       = (*Image)(nil)
	_ image.ClusterSizer = (*Image)(nil)
	_ image.BackingFiler = (*Image)(nil)
)

// Open opens the VHDX image stored in file. On success the image owns file
// (and the parent); on failure the caller closes file.
//
// Options, for an image with a log to replay (not closed cleanly), which is
// otherwise refused: "replay-log=on" replays the log in memory over a
// read-only image (the file is not changed); "ignore-log=on" opens it
// read-only as it is on disk. "parent-linkage-check=off" opens a
// differencing image over a parent whose DataWriteGuid is not the one the
// child recorded.
func Open(file block.Driver, o image.FormatOpen) (*Image, error) {
	ignoreLog, replay, linkageCheck := false, false, true
	for _, k := range sortedKeys(o.Options) {
		switch k {
		case "ignore-log", "replay-log", "parent-linkage-check":
			b, err := parseBool(o.Options[k])
			if err != nil {
				return nil, fmt.Errorf("vhdx: %w: %s=%q: %v", block.ErrInvalid, k, o.Options[k], err)
			}
			switch k {
			case "ignore-log":
				ignoreLog = b
			case "replay-log":
				replay = b
			default:
				linkageCheck = b
			}
		default:
			return nil, fmt.Errorf("vhdx: %w: unknown option %q (vhdx takes replay-log, ignore-log and parent-linkage-check)", block.ErrInvalid, k)
		}
	}
	fileSize := file.Size()
	if fileSize < region2Offset+regionSize {
		return nil, fmt.Errorf("vhdx: %w: file of %d bytes is too small for a VHDX image", block.ErrCorrupt, fileSize)
	}
	sig := make([]byte, 8)
	if err := file.Pread(sig, 0); err != nil {
		return nil, err
	}
	if string(sig) != fileSignature {
		return nil, fmt.Errorf("vhdx: %w: file signature %q, want %q", block.ErrCorrupt, sig, fileSignature)
	}
	h, hOff, err := readHeaders(file)
	if err != nil {
		return nil, err
	}
	img := &Image{file: file, header: h, headerOffset: hOff, readOnly: o.ReadOnly, fileEnd: fileSize, skipLinkage: !linkageCheck}
	if !h.LogGUID.IsZero() {
		switch {
		case replay && o.ReadOnly:
			writes, err := replayLog(file, h)
			if err != nil {
				return nil, err
			}
			file = newReplayedFile(file, writes)
			img.file = file
			img.logState = "replayed in memory"
		case ignoreLog && o.ReadOnly:
			img.logState = "dirty, not replayed"
		default:
			return nil, fmt.Errorf("vhdx: %w: the image has a log to replay (it was not closed cleanly; LogGuid %s): opening does not write the replay into the file; replay it with thinblk check -r all, or open it read-only with -o replay-log=on to read it as replayed (in memory), or with -o ignore-log=on to read the possibly stale metadata",
				block.ErrNotSupported, h.LogGUID)
		}
	}
	batRegion, metaRegion, err := readRegions(file)
	if err != nil {
		return nil, err
	}
	if img.meta, err = readMetadata(file, metaRegion); err != nil {
		return nil, err
	}
	img.size = int64(img.meta.VirtualSize)
	img.geo = newGeometry(img.meta)
	img.batStart = int64(batRegion.Offset)
	if img.bat, err = readBAT(file, batRegion, img.geo); err != nil {
		return nil, err
	}
	if img.meta.HasParent && !o.NoBacking {
		if o.OpenBacking == nil {
			return nil, fmt.Errorf("vhdx: %w: differencing image opened without a way to open its parent", block.ErrInvalid)
		}
		if err := img.openParent(o.OpenBacking); err != nil {
			return nil, err
		}
	}
	return img, nil
}

// Size returns the virtual size in bytes.
func (img *Image) Size() int64 { return img.size }

// Backing returns the parent of a differencing image, or nil.
func (img *Image) Backing() block.Driver { return img.backing }

// BackingFile returns the parent's name as found by its locator.
func (img *Image) BackingFile() (name, format string) {
	if img.parentName != "" {
		return img.parentName, "vhdx"
	}
	return "", ""
}

// ClusterSize returns the block size.
func (img *Image) ClusterSize() int64 { return img.geo.blockSize }

// SparseClusters reports that a payload block allocated by a partial write
// keeps the rest of it as a hole of the file (reading zeros), so writers
// (the copy engine) need not write blocks whole.
func (img *Image) SparseClusters() bool { return true }

// Subformat returns "differencing", "fixed" (every block allocated and
// LeaveBlocksAllocated set) or "dynamic".
func (img *Image) Subformat() string {
	if img.meta.HasParent {
		return "differencing"
	}
	if img.meta.LeaveAllocated {
		return "fixed"
	}
	return "dynamic"
}

// Flush makes written data and BAT updates durable.
func (img *Image) Flush() error {
	if img.readOnly {
		return nil
	}
	return img.flushBAT()
}

// Close writes back BAT entries of blocks allocated since the last flush
// (data first, each step flushed: the image stays consistent), then closes
// the parent and the file.
func (img *Image) Close() error {
	var err error
	if !img.readOnly {
		err = img.flushBAT()
	}
	if img.backing != nil {
		if e := img.backing.Close(); err == nil {
			err = e
		}
	}
	if e := img.file.Close(); err == nil {
		err = e
	}
	return err
}

// canWrite reports whether writes are accepted.
func (img *Image) canWrite() bool { return !img.readOnly && !img.meta.HasParent }

// Caps: writable (non-differencing images opened read-write) with flush
// and block status; write-zeroes as native and fast as the file's (blocks
// that are not allocated need nothing).
func (img *Image) Caps() block.Caps {
	if !img.canWrite() {
		return block.Caps{BlockStatus: true}
	}
	fc := img.file.Caps()
	return block.Caps{Write: true, Flush: fc.Flush, WriteZeroes: fc.WriteZeroes, FastZero: fc.FastZero, BlockStatus: true}
}

// Limits: byte-addressable; the optimal transfer is the block size.
func (img *Image) Limits() block.Limits {
	return block.Limits{RequestAlign: 1, PhysicalBlock: int64(img.meta.PhysicalSectorSize), OptimalTransfer: img.geo.blockSize}
}

// Info reports the format, the file's allocation and the VHDX specifics.
func (img *Image) Info() (block.Info, error) {
	fi, err := img.file.Info()
	if err != nil {
		return block.Info{}, err
	}
	return block.Info{
		Format:               "vhdx",
		VirtualSize:          img.size,
		AllocatedBytes:       fi.AllocatedBytes,
		Watermark:            fi.Watermark,
		UnallocatedReadsZero: img.backing == nil,
		Specific:             img.Specific(),
	}, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func parseBool(v string) (bool, error) {
	switch v {
	case "on", "true", "yes", "1", "":
		return true, nil
	case "off", "false", "no", "0":
		return false, nil
	}
	return false, fmt.Errorf("not a boolean (on/off)")
}

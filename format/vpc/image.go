package vpc

import (
	"encoding/binary"
	"fmt"
	"sort"
	"sync"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
)

func init() {
	image.Register(image.Format{
		Name:   "vpc",
		Probe:  Probe,
		Open:   func(file block.Driver, o image.FormatOpen) (block.Driver, error) { return Open(file, o) },
		Create: Create,
	})
}

// Probe recognises dynamic and differencing images by the footer copy at
// offset 0. Fixed images have their footer at the end of the file only;
// like QEMU, they probe as raw (open them with -f vpc).
func Probe(head []byte) int {
	if len(head) >= 8 && string(head[:8]) == footerCookie {
		return 100
	}
	return 0
}

// Image is an opened VHD image. See the package documentation.
type Image struct {
	file     block.Driver
	footer   *Footer
	dyn      *DynamicHeader // nil for a fixed image
	readOnly bool
	size     int64 // virtual size in bytes

	// Dynamic and differencing images. batMu guards bat; allocMu
	// serializes allocating writes and guards footerOffset and dirtyBAT.
	batMu        sync.RWMutex
	bat          []uint32 // sector offsets of the blocks' bitmaps
	allocMu      sync.Mutex
	footerOffset int64          // where the footer at the end is
	dirtyBAT     map[int64]bool // BAT entries changed since the last flush
	blockSize    int64
	bitmapSize   int64

	// Differencing images.
	backing         block.Driver
	parentName      string
	skipParentCheck bool // parent-linkage-check=off
}

var (
	_ block.Driver       = (*Image)(nil)
	_ block.Backed       = (*Image)(nil)
	_ image.ClusterSizer = (*Image)(nil)
	_ image.BackingFiler = (*Image)(nil)
)

// Open opens the VHD image stored in file. On success the image owns file
// (and the parent, if one was opened); on failure the caller closes file.
//
// Options: "force_size_calc" ("chs" or "current_size") chooses how the
// virtual size is computed; "parent-linkage-check=off" opens a
// differencing image over a parent whose unique ID is not the recorded one. Dynamic and differencing images are read-only;
// a fixed image is writable unless o.ReadOnly.
func Open(file block.Driver, o image.FormatOpen) (*Image, error) {
	sizeCalc, parentCheck := "", true
	for _, k := range sortedKeys(o.Options) {
		switch k {
		case "parent-linkage-check":
			b, err := parseBool(o.Options[k])
			if err != nil {
				return nil, fmt.Errorf("vpc: %w: %s=%q: %v", block.ErrInvalid, k, o.Options[k], err)
			}
			parentCheck = b
		case "force_size_calc":
			sizeCalc = o.Options[k]
			if sizeCalc != "chs" && sizeCalc != "current_size" {
				return nil, fmt.Errorf("vpc: %w: force_size_calc=%q (chs or current_size)", block.ErrInvalid, sizeCalc)
			}
		default:
			return nil, fmt.Errorf("vpc: %w: unknown option %q (vpc takes force_size_calc and parent-linkage-check)", block.ErrInvalid, k)
		}
	}
	fileSize := file.Size()
	if fileSize < footerSize {
		return nil, fmt.Errorf("vpc: %w: file of %d bytes is too small for a VHD footer", block.ErrCorrupt, fileSize)
	}
	img := &Image{file: file, readOnly: o.ReadOnly, skipParentCheck: !parentCheck}
	// The footer copy at offset 0 (dynamic images), else the footer at the
	// end (fixed images, or a dynamic image with a damaged copy).
	buf := make([]byte, footerSize)
	if err := file.Pread(buf, 0); err != nil {
		return nil, err
	}
	f, errHead := parseFooter(buf)
	if errHead != nil || f.DiskType == diskFixed {
		headHasCookie := string(buf[:8]) == footerCookie
		if err := file.Pread(buf, fileSize-footerSize); err != nil {
			return nil, err
		}
		var errEnd error
		if f, errEnd = parseFooter(buf); errEnd != nil {
			switch {
			case string(buf[:8]) == footerCookie:
				return nil, errEnd
			case headHasCookie && errHead != nil:
				return nil, errHead
			}
			return nil, fmt.Errorf("vpc: %w: no VHD footer at offset 0 or at the end of the file", block.ErrCorrupt)
		}
	}
	img.footer = f
	useCHS := f.usesCHS()
	switch sizeCalc {
	case "chs":
		useCHS = true
	case "current_size":
		useCHS = false
	}
	if f.maxGeometry() {
		useCHS = false
	}
	if useCHS {
		img.size = f.chsSize()
	} else {
		if f.CurrentSize > 1<<62 {
			return nil, fmt.Errorf("vpc: %w: current size %d", block.ErrCorrupt, f.CurrentSize)
		}
		img.size = int64(f.CurrentSize)
	}
	if img.size%sectorSize != 0 {
		return nil, fmt.Errorf("vpc: %w: virtual size %d is not a multiple of %d", block.ErrCorrupt, img.size, sectorSize)
	}
	if f.DiskType == diskFixed {
		if img.size > fileSize-footerSize {
			return nil, fmt.Errorf("vpc: %w: fixed image of %d bytes in a file of %d bytes", block.ErrCorrupt, img.size, fileSize)
		}
		return img, nil
	}
	if err := img.openDynamic(fileSize); err != nil {
		return nil, err
	}
	if f.DiskType == diskDynamic && !o.ReadOnly {
		if err := img.prepareWrite(fileSize); err != nil {
			return nil, err
		}
	}
	if f.DiskType == diskDifferencing && !o.NoBacking {
		if o.OpenBacking == nil {
			return nil, fmt.Errorf("vpc: %w: differencing image opened without a way to open its parent", block.ErrInvalid)
		}
		if err := img.openParent(o.OpenBacking); err != nil {
			return nil, err
		}
	}
	return img, nil
}

// openDynamic reads the dynamic header and the BAT.
func (img *Image) openDynamic(fileSize int64) error {
	f := img.footer
	if f.DataOffset > uint64(fileSize) || dynHeaderSize > fileSize-int64(f.DataOffset) {
		return fmt.Errorf("vpc: %w: dynamic header at %d does not fit a file of %d bytes", block.ErrCorrupt, f.DataOffset, fileSize)
	}
	hb := make([]byte, dynHeaderSize)
	if err := img.file.Pread(hb, int64(f.DataOffset)); err != nil {
		return err
	}
	h, err := parseDynamicHeader(hb, fileSize)
	if err != nil {
		return err
	}
	img.dyn = h
	img.blockSize = int64(h.BlockSize)
	img.bitmapSize = bitmapSize(img.blockSize)
	if need := (img.size + img.blockSize - 1) / img.blockSize; need > int64(h.MaxTableEntries) {
		return fmt.Errorf("vpc: %w: BAT of %d entries cannot map %d bytes in blocks of %d", block.ErrCorrupt, h.MaxTableEntries, img.size, img.blockSize)
	}
	raw := make([]byte, int64(h.MaxTableEntries)*4) // bounded by the file size (parseDynamicHeader)
	if err := img.file.Pread(raw, int64(h.TableOffset)); err != nil {
		return err
	}
	img.bat = make([]uint32, h.MaxTableEntries)
	for i := range img.bat {
		img.bat[i] = binary.BigEndian.Uint32(raw[4*i:])
	}
	return nil
}

// Size returns the virtual size in bytes.
func (img *Image) Size() int64 { return img.size }

// Backing returns the parent of a differencing image, or nil.
func (img *Image) Backing() block.Driver { return img.backing }

// BackingFile returns the parent's name as found by its locator (no format:
// it is probed).
func (img *Image) BackingFile() (name, format string) { return img.parentName, "" }

// ClusterSize returns the block size of a dynamic image, 0 for a fixed one.
func (img *Image) ClusterSize() int64 { return img.blockSize }

// SparseClusters reports that a block allocated by a partial write keeps
// the rest of it as a hole of the file (reading zeros), so writers (the
// copy engine) need not write blocks whole.
func (img *Image) SparseClusters() bool { return true }

// Subformat returns "fixed", "dynamic" or "differencing".
func (img *Image) Subformat() string {
	switch img.footer.DiskType {
	case diskFixed:
		return "fixed"
	case diskDynamic:
		return "dynamic"
	}
	return "differencing"
}

// Flush makes written data durable; in a dynamic image it then writes the
// BAT entries of new blocks and flushes again.
func (img *Image) Flush() error {
	if img.readOnly {
		return nil
	}
	if img.dyn != nil {
		return img.flushBAT()
	}
	return img.file.Flush()
}

// Close writes back a dynamic image's new BAT entries (as Flush), then
// closes the parent and the file.
func (img *Image) Close() error {
	var err error
	if img.dyn != nil && !img.readOnly && img.footer.DiskType == diskDynamic {
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

// Caps: a fixed image has its file's; a dynamic image opened read-write
// writes, flushes and zeroes as its file does (no discard); both are
// read-only when opened so, as a differencing image always is.
func (img *Image) Caps() block.Caps {
	fc := img.file.Caps()
	switch {
	case img.readOnly:
		if img.dyn == nil {
			return block.Caps{BlockStatus: fc.BlockStatus}
		}
		return block.Caps{BlockStatus: true}
	case img.dyn == nil:
		return fc
	case img.footer.DiskType == diskDynamic:
		return block.Caps{Write: true, Flush: fc.Flush, WriteZeroes: fc.WriteZeroes, FastZero: fc.FastZero, BlockStatus: true}
	}
	return block.Caps{BlockStatus: true}
}

// Limits: requests are byte-addressable; a dynamic image's optimal transfer
// is its block size.
func (img *Image) Limits() block.Limits {
	l := img.file.Limits()
	if img.dyn != nil {
		l.OptimalTransfer = img.blockSize
		l.DiscardGranularity, l.DiscardAlignment, l.MaxDiscard, l.MaxWriteZeroes = 0, 0, 0, 0
	}
	return l
}

// Info reports the format, the file's allocation and the VHD specifics.
func (img *Image) Info() (block.Info, error) {
	fi, err := img.file.Info()
	if err != nil {
		return block.Info{}, err
	}
	return block.Info{
		Format:               "vpc",
		VirtualSize:          img.size,
		AllocatedBytes:       fi.AllocatedBytes,
		Watermark:            fi.Watermark,
		UnallocatedReadsZero: img.backing == nil,
		ZeroUnmapDeallocates: img.dyn == nil && fi.ZeroUnmapDeallocates,
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

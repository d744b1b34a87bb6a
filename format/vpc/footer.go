package vpc

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/thinblk/thinblk/block"
)

// On-disk constants (VHD specification, "Hard Disk Footer Format" and
// "Dynamic Disk Header Format"). All fields are big-endian.
const (
	footerSize    = 512
	dynHeaderSize = 1024
	sectorSize    = 512

	footerCookie = "conectix"
	dynCookie    = "cxsparse"

	// Disk types.
	diskFixed        = 2
	diskDynamic      = 3
	diskDifferencing = 4

	// batUnallocated marks a BAT entry without a block.
	batUnallocated = 0xFFFFFFFF

	// noDataOffset is the footer's data offset of a fixed image.
	noDataOffset = 0xFFFFFFFFFFFFFFFF

	// Maximum CHS geometry: images with it use the current size.
	maxCylinders = 65535
	maxHeads     = 16
	maxSPT       = 255

	// Bounds we accept, beyond the file-size checks.
	minBlockSize   = sectorSize
	maxBlockSize   = 1 << 30
	maxLocatorData = 64 << 10
)

// vhdEpoch is the origin of VHD timestamps (2000-01-01 00:00:00 UTC).
var vhdEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Footer is the 512-byte hard disk footer.
type Footer struct {
	Cookie         [8]byte
	Features       uint32
	FormatVersion  uint32
	DataOffset     uint64
	Timestamp      uint32
	CreatorApp     [4]byte
	CreatorVersion uint32
	CreatorHostOS  [4]byte
	OriginalSize   uint64
	CurrentSize    uint64
	Cylinders      uint16
	Heads          uint8
	SectorsPerCyl  uint8
	DiskType       uint32
	Checksum       uint32
	UniqueID       [16]byte
	SavedState     uint8
}

// checksum is the VHD checksum: the one's complement of the sum of all
// bytes of b, with the 4 bytes at skip (the checksum field) counted as 0.
func checksum(b []byte, skip int) uint32 {
	var sum uint32
	for i, c := range b {
		if i >= skip && i < skip+4 {
			continue
		}
		sum += uint32(c)
	}
	return ^sum
}

// parseFooter decodes and validates a footer (b is at least footerSize).
func parseFooter(b []byte) (*Footer, error) {
	if len(b) < footerSize {
		return nil, fmt.Errorf("vpc: %w: footer truncated (%d bytes)", block.ErrCorrupt, len(b))
	}
	var f Footer
	if err := binary.Read(bytes.NewReader(b[:85]), binary.BigEndian, &f); err != nil {
		return nil, fmt.Errorf("vpc: %w: footer: %v", block.ErrCorrupt, err)
	}
	if string(f.Cookie[:]) != footerCookie {
		return nil, fmt.Errorf("vpc: %w: no VHD footer (cookie %q, want %q)", block.ErrCorrupt, f.Cookie[:], footerCookie)
	}
	if sum := checksum(b[:footerSize], 64); sum != f.Checksum {
		return nil, fmt.Errorf("vpc: %w: footer checksum 0x%08x, computed 0x%08x", block.ErrCorrupt, f.Checksum, sum)
	}
	switch f.DiskType {
	case diskFixed, diskDynamic, diskDifferencing:
	default:
		return nil, fmt.Errorf("vpc: %w: disk type %d (fixed 2, dynamic 3 and differencing 4 are known)", block.ErrNotSupported, f.DiskType)
	}
	return &f, nil
}

// encode returns the 512-byte footer with its checksum computed.
func (f *Footer) encode() []byte {
	var buf bytes.Buffer
	_ = binary.Write(&buf, binary.BigEndian, f)
	b := make([]byte, footerSize)
	copy(b, buf.Bytes())
	binary.BigEndian.PutUint32(b[64:], checksum(b, 64))
	return b
}

// chsSize returns the size the CHS geometry describes, in bytes.
func (f *Footer) chsSize() int64 {
	return int64(f.Cylinders) * int64(f.Heads) * int64(f.SectorsPerCyl) * sectorSize
}

// maxGeometry reports whether the geometry is the largest CHS geometry (the
// size then cannot be expressed in CHS).
func (f *Footer) maxGeometry() bool {
	return f.Cylinders == maxCylinders && f.Heads == maxHeads && f.SectorsPerCyl == maxSPT
}

// usesCHS reports whether the creator sizes the disk by its geometry
// (Virtual PC and QEMU before force_size).
func (f *Footer) usesCHS() bool {
	app := string(f.CreatorApp[:])
	return app == "vpc " || app == "qemu"
}

// ParentLocator is one parent locator entry of the dynamic header.
type ParentLocator struct {
	PlatformCode       [4]byte
	PlatformDataSpace  uint32 // sectors (bytes in some writers)
	PlatformDataLength uint32 // bytes
	Reserved           uint32
	PlatformDataOffset uint64 // bytes from the start of the file
}

// DynamicHeader is the 1024-byte dynamic disk header.
type DynamicHeader struct {
	Cookie           [8]byte
	DataOffset       uint64
	TableOffset      uint64
	HeaderVersion    uint32
	MaxTableEntries  uint32
	BlockSize        uint32
	Checksum         uint32
	ParentUniqueID   [16]byte
	ParentTimestamp  uint32
	Reserved         uint32
	ParentUnicodeRaw [512]byte // UTF-16 big-endian, NUL padded
	Locators         [8]ParentLocator
}

// parseDynamicHeader decodes and validates the dynamic header against the
// file size.
func parseDynamicHeader(b []byte, fileSize int64) (*DynamicHeader, error) {
	if len(b) < dynHeaderSize {
		return nil, fmt.Errorf("vpc: %w: dynamic header truncated", block.ErrCorrupt)
	}
	var h DynamicHeader
	if err := binary.Read(bytes.NewReader(b[:dynHeaderSize]), binary.BigEndian, &h); err != nil {
		return nil, fmt.Errorf("vpc: %w: dynamic header: %v", block.ErrCorrupt, err)
	}
	if string(h.Cookie[:]) != dynCookie {
		return nil, fmt.Errorf("vpc: %w: dynamic header cookie %q, want %q", block.ErrCorrupt, h.Cookie[:], dynCookie)
	}
	if sum := checksum(b[:dynHeaderSize], 36); sum != h.Checksum {
		return nil, fmt.Errorf("vpc: %w: dynamic header checksum 0x%08x, computed 0x%08x", block.ErrCorrupt, h.Checksum, sum)
	}
	bs := int64(h.BlockSize)
	if bs < minBlockSize || bs > maxBlockSize || bs&(bs-1) != 0 {
		return nil, fmt.Errorf("vpc: %w: block size %d (a power of two from %d to %d)", block.ErrCorrupt, bs, minBlockSize, maxBlockSize)
	}
	batBytes := int64(h.MaxTableEntries) * 4
	if h.TableOffset > uint64(fileSize) || batBytes > fileSize-int64(h.TableOffset) {
		return nil, fmt.Errorf("vpc: %w: BAT of %d entries at %d does not fit a file of %d bytes", block.ErrCorrupt, h.MaxTableEntries, h.TableOffset, fileSize)
	}
	return &h, nil
}

// encode returns the 1024-byte dynamic header with its checksum computed.
func (h *DynamicHeader) encode() []byte {
	var buf bytes.Buffer
	_ = binary.Write(&buf, binary.BigEndian, h)
	b := make([]byte, dynHeaderSize) // the struct is 768 bytes; 256 reserved follow
	copy(b, buf.Bytes())
	binary.BigEndian.PutUint32(b[36:], checksum(b, 36))
	return b
}

// bitmapSize returns the size of a block's sector bitmap: one bit per
// sector, padded to a whole sector.
func bitmapSize(blockSize int64) int64 {
	bits := blockSize / sectorSize
	return ((bits+7)/8 + sectorSize - 1) / sectorSize * sectorSize
}

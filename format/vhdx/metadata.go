package vhdx

import (
	"encoding/binary"
	"fmt"
	"unicode/utf16"

	"github.com/thinblk/thinblk/block"
)

// Metadata limits ([MS-VHDX] 2.6).
const (
	metaTableSize      = 64 << 10
	maxMetaEntries     = 2047
	minBlockSize       = 1 << 20
	maxBlockSize       = 256 << 20
	maxVirtualSize     = 64 << 40
	maxParentLocator   = 64 << 10
	maxParentKeyValues = 256

	flagLeaveBlocksAllocated = 1
	flagHasParent            = 2
)

// Metadata is what the metadata region says about the disk.
type Metadata struct {
	BlockSize          uint32
	LeaveAllocated     bool
	HasParent          bool
	VirtualSize        uint64
	VirtualDiskID      GUID
	LogicalSectorSize  uint32
	PhysicalSectorSize uint32
	// ParentLocator holds the parent locator's key/value pairs
	// (differencing images).
	ParentLocator map[string]string
}

// readMetadata reads the metadata table and its known items from the
// metadata region, checking every item against the region.
func readMetadata(file block.Driver, r region) (*Metadata, error) {
	if r.Length < metaTableSize {
		return nil, fmt.Errorf("vhdx: %w: metadata region of %d bytes", block.ErrCorrupt, r.Length)
	}
	tbl := make([]byte, metaTableSize)
	if err := file.Pread(tbl, int64(r.Offset)); err != nil {
		return nil, err
	}
	if string(tbl[:8]) != metaSignature {
		return nil, fmt.Errorf("vhdx: %w: metadata table signature %q", block.ErrCorrupt, tbl[:8])
	}
	n := int(binary.LittleEndian.Uint16(tbl[10:]))
	if n > maxMetaEntries {
		return nil, fmt.Errorf("vhdx: %w: %d metadata entries (at most %d)", block.ErrCorrupt, n, maxMetaEntries)
	}
	m := &Metadata{}
	seen := map[GUID]bool{}
	item := func(off, length uint32, want int) ([]byte, error) {
		if want >= 0 && int(length) != want {
			return nil, fmt.Errorf("length %d, want %d", length, want)
		}
		if off < metaTableSize || uint64(off)+uint64(length) > uint64(r.Length) {
			return nil, fmt.Errorf("at %d length %d outside the region of %d bytes", off, length, r.Length)
		}
		b := make([]byte, length) // bounded by the region, which fits the file
		return b, file.Pread(b, int64(r.Offset)+int64(off))
	}
	for i := 0; i < n; i++ {
		e := tbl[32+32*i:]
		var id GUID
		copy(id[:], e)
		off := binary.LittleEndian.Uint32(e[16:])
		length := binary.LittleEndian.Uint32(e[20:])
		flags := binary.LittleEndian.Uint32(e[24:])
		isUser, isRequired := flags&1 != 0, flags&4 != 0
		if isUser {
			continue
		}
		if seen[id] {
			return nil, fmt.Errorf("vhdx: %w: metadata item %s twice", block.ErrCorrupt, id)
		}
		seen[id] = true
		var b []byte
		var err error
		switch id {
		case metaFileParameters:
			if b, err = item(off, length, 8); err == nil {
				m.BlockSize = binary.LittleEndian.Uint32(b)
				fl := binary.LittleEndian.Uint32(b[4:])
				m.LeaveAllocated, m.HasParent = fl&flagLeaveBlocksAllocated != 0, fl&flagHasParent != 0
			}
		case metaVirtualDiskSize:
			if b, err = item(off, length, 8); err == nil {
				m.VirtualSize = binary.LittleEndian.Uint64(b)
			}
		case metaVirtualDiskID:
			if b, err = item(off, length, 16); err == nil {
				copy(m.VirtualDiskID[:], b)
			}
		case metaLogicalSector:
			if b, err = item(off, length, 4); err == nil {
				m.LogicalSectorSize = binary.LittleEndian.Uint32(b)
			}
		case metaPhysicalSector:
			if b, err = item(off, length, 4); err == nil {
				m.PhysicalSectorSize = binary.LittleEndian.Uint32(b)
			}
		case metaParentLocator:
			if length > maxParentLocator {
				err = fmt.Errorf("length %d over %d", length, maxParentLocator)
			} else if b, err = item(off, length, -1); err == nil {
				m.ParentLocator, err = parseParentLocator(b)
			}
		default:
			if isRequired {
				return nil, fmt.Errorf("vhdx: %w: unknown required metadata item %s", block.ErrNotSupported, id)
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("vhdx: %w: metadata item %s: %v", block.ErrCorrupt, id, err)
		}
	}
	for _, need := range []GUID{metaFileParameters, metaVirtualDiskSize, metaLogicalSector, metaPhysicalSector} {
		if !seen[need] {
			return nil, fmt.Errorf("vhdx: %w: required metadata item %s missing", block.ErrCorrupt, need)
		}
	}
	return m, m.validate()
}

// validate checks the metadata values against the format's limits.
func (m *Metadata) validate() error {
	bs := m.BlockSize
	if bs < minBlockSize || bs > maxBlockSize || bs&(bs-1) != 0 {
		return fmt.Errorf("vhdx: %w: block size %d (a power of two from 1 MiB to 256 MiB)", block.ErrCorrupt, bs)
	}
	if m.LogicalSectorSize != 512 && m.LogicalSectorSize != 4096 {
		return fmt.Errorf("vhdx: %w: logical sector size %d (512 or 4096)", block.ErrCorrupt, m.LogicalSectorSize)
	}
	if m.PhysicalSectorSize != 512 && m.PhysicalSectorSize != 4096 {
		return fmt.Errorf("vhdx: %w: physical sector size %d (512 or 4096)", block.ErrCorrupt, m.PhysicalSectorSize)
	}
	if m.VirtualSize == 0 || m.VirtualSize > maxVirtualSize || m.VirtualSize%uint64(m.LogicalSectorSize) != 0 {
		return fmt.Errorf("vhdx: %w: virtual size %d (a multiple of the %d-byte sector, at most 64 TiB)", block.ErrCorrupt, m.VirtualSize, m.LogicalSectorSize)
	}
	if m.HasParent && m.ParentLocator == nil {
		return fmt.Errorf("vhdx: %w: differencing image without a parent locator", block.ErrCorrupt)
	}
	return nil
}

// parseParentLocator decodes a parent locator item: a header (locator
// type GUID, reserved, key/value count) and key/value entries pointing at
// UTF-16LE strings inside the item.
func parseParentLocator(b []byte) (map[string]string, error) {
	if len(b) < 20 {
		return nil, fmt.Errorf("parent locator of %d bytes", len(b))
	}
	var typ GUID
	copy(typ[:], b)
	if typ != parentLocatorTypeVHDX {
		return nil, fmt.Errorf("parent locator type %s (only the VHDX type %s is known)", typ, parentLocatorTypeVHDX)
	}
	n := int(binary.LittleEndian.Uint16(b[18:]))
	if n > maxParentKeyValues || 20+12*n > len(b) {
		return nil, fmt.Errorf("parent locator with %d entries in %d bytes", n, len(b))
	}
	str := func(off uint32, length uint16) (string, error) {
		if uint64(off)+uint64(length) > uint64(len(b)) || length%2 != 0 {
			return "", fmt.Errorf("string at %d length %d outside the locator of %d bytes", off, length, len(b))
		}
		u := make([]uint16, length/2)
		for i := range u {
			u[i] = binary.LittleEndian.Uint16(b[int(off)+2*i:])
		}
		return string(utf16.Decode(u)), nil
	}
	kv := make(map[string]string, n)
	for i := 0; i < n; i++ {
		e := b[20+12*i:]
		k, err := str(binary.LittleEndian.Uint32(e), binary.LittleEndian.Uint16(e[8:]))
		if err != nil {
			return nil, err
		}
		v, err := str(binary.LittleEndian.Uint32(e[4:]), binary.LittleEndian.Uint16(e[10:]))
		if err != nil {
			return nil, err
		}
		kv[k] = v
	}
	return kv, nil
}

// encodeUTF16 encodes s as UTF-16LE.
func encodeUTF16(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return b
}

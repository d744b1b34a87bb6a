package vdi

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"

	"github.com/thinblk/thinblk/block"
)

// Signature is the header signature at offset 0x40.
const Signature = 0xbeda107f

const (
	version11 = 0x00010001
	// preHeaderText is the text VirtualBox writes before the header.
	preHeaderText = "<<< Oracle VM VirtualBox Disk Image >>>\n"
	// headerEnd is where the header ends: the header size field at 0x48
	// counts 0x180 bytes from itself (up to and with uuid_parent).
	headerEnd   = 0x1c8
	headerSize  = 0x180
	sectorSize  = 512
	defaultBmap = 0x200

	typeDynamic = 1
	typeStatic  = 2

	entryUnallocated = 0xffffffff
	entryDiscarded   = 0xfffffffe

	// DefaultBlockSize is the block size qemu-img and VirtualBox use.
	DefaultBlockSize = 1 << 20
	maxBlockSize     = 1 << 28
	maxBlocks        = 0x3fffffff
)

// Header is the VDI header with the layout's field names. Offsets are in
// bytes from the start of the file.
type Header struct {
	Version         uint32
	HeaderSize      uint32
	ImageType       uint32
	ImageFlags      uint32
	OffsetBmap      uint32
	OffsetData      uint32
	SectorSize      uint32
	DiskSize        uint64
	BlockSize       uint32
	BlockExtra      uint32
	BlocksInImage   uint32
	BlocksAllocated uint32
	UUIDImage       [16]byte
	UUIDLastSnap    [16]byte
	UUIDLink        [16]byte
	UUIDParent      [16]byte
}

func corruptf(format string, args ...any) error {
	return fmt.Errorf("vdi: %w: "+format, append([]any{block.ErrCorrupt}, args...)...)
}

// parseHeader decodes and validates the header in b (at least headerEnd
// bytes) against a file of fileSize bytes.
func parseHeader(b []byte, fileSize int64) (Header, error) {
	if len(b) < headerEnd {
		return Header{}, corruptf("file of %d bytes is too short for a header", len(b))
	}
	le := binary.LittleEndian
	if sig := le.Uint32(b[0x40:]); sig != Signature {
		return Header{}, corruptf("bad signature %#x (want %#x)", sig, uint32(Signature))
	}
	h := Header{
		Version:         le.Uint32(b[0x44:]),
		HeaderSize:      le.Uint32(b[0x48:]),
		ImageType:       le.Uint32(b[0x4c:]),
		ImageFlags:      le.Uint32(b[0x50:]),
		OffsetBmap:      le.Uint32(b[0x154:]),
		OffsetData:      le.Uint32(b[0x158:]),
		SectorSize:      le.Uint32(b[0x168:]),
		DiskSize:        le.Uint64(b[0x170:]),
		BlockSize:       le.Uint32(b[0x178:]),
		BlockExtra:      le.Uint32(b[0x17c:]),
		BlocksInImage:   le.Uint32(b[0x180:]),
		BlocksAllocated: le.Uint32(b[0x184:]),
	}
	copy(h.UUIDImage[:], b[0x188:])
	copy(h.UUIDLastSnap[:], b[0x198:])
	copy(h.UUIDLink[:], b[0x1a8:])
	copy(h.UUIDParent[:], b[0x1b8:])
	if h.Version != version11 {
		return h, fmt.Errorf("vdi: %w: version %#x (only 1.1 is supported)", block.ErrNotSupported, h.Version)
	}
	if h.ImageType != typeDynamic && h.ImageType != typeStatic {
		return h, fmt.Errorf("vdi: %w: image type %d (only dynamic 1 and static 2; undo and differencing images are not)", block.ErrNotSupported, h.ImageType)
	}
	if h.SectorSize != sectorSize {
		return h, corruptf("sector size %d (want 512)", h.SectorSize)
	}
	if h.BlockSize < sectorSize || h.BlockSize > maxBlockSize || h.BlockSize&(h.BlockSize-1) != 0 {
		return h, corruptf("block size %d is not a power of two from 512 to %d", h.BlockSize, maxBlockSize)
	}
	if h.BlockExtra > maxBlockSize {
		return h, corruptf("block extra %d too large", h.BlockExtra)
	}
	if h.BlocksInImage > maxBlocks {
		return h, corruptf("%d blocks (at most %d)", h.BlocksInImage, maxBlocks)
	}
	if h.DiskSize > uint64(h.BlocksInImage)*uint64(h.BlockSize) {
		return h, corruptf("disk size %d but the block map has room for %d bytes", h.DiskSize, uint64(h.BlocksInImage)*uint64(h.BlockSize))
	}
	if h.BlocksAllocated > h.BlocksInImage {
		return h, corruptf("%d blocks allocated of %d", h.BlocksAllocated, h.BlocksInImage)
	}
	if h.OffsetBmap < headerEnd || int64(h.OffsetBmap) > fileSize || int64(h.BlocksInImage)*4 > fileSize-int64(h.OffsetBmap) {
		return h, corruptf("block map of %d entries at offset %d does not fit a file of %d bytes", h.BlocksInImage, h.OffsetBmap, fileSize)
	}
	if int64(h.OffsetData) < int64(h.OffsetBmap)+int64(h.BlocksInImage)*4 || int64(h.OffsetData) > fileSize {
		return h, corruptf("data offset %d overlaps the block map or is past the end of the file (%d bytes)", h.OffsetData, fileSize)
	}
	return h, nil
}

// encode writes the header (and the pre-header text) into b[:headerEnd].
func (h *Header) encode(b []byte) {
	clear(b[:headerEnd])
	copy(b, preHeaderText)
	le := binary.LittleEndian
	le.PutUint32(b[0x40:], Signature)
	le.PutUint32(b[0x44:], h.Version)
	le.PutUint32(b[0x48:], h.HeaderSize)
	le.PutUint32(b[0x4c:], h.ImageType)
	le.PutUint32(b[0x50:], h.ImageFlags)
	le.PutUint32(b[0x154:], h.OffsetBmap)
	le.PutUint32(b[0x158:], h.OffsetData)
	le.PutUint32(b[0x168:], h.SectorSize)
	le.PutUint64(b[0x170:], h.DiskSize)
	le.PutUint32(b[0x178:], h.BlockSize)
	le.PutUint32(b[0x17c:], h.BlockExtra)
	le.PutUint32(b[0x180:], h.BlocksInImage)
	le.PutUint32(b[0x184:], h.BlocksAllocated)
	copy(b[0x188:], h.UUIDImage[:])
	copy(b[0x198:], h.UUIDLastSnap[:])
	copy(b[0x1a8:], h.UUIDLink[:])
	copy(b[0x1b8:], h.UUIDParent[:])
}

// newUUID returns a random (version 4) UUID.
func newUUID() [16]byte {
	var u [16]byte
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u
}

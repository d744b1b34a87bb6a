package vmdk

import (
	"encoding/binary"
	"fmt"

	"github.com/thinblk/thinblk/block"
)

// Magic is the first four bytes of a hosted sparse extent ("KDMV" read as
// a little-endian uint32 0x564d444b).
const Magic = "KDMV"

const (
	sectorSize = 512
	// headerSize is the size of a sparse extent header (one sector).
	headerSize = 512

	// Header flags.
	flagValidNewline   = 1 << 0
	flagRedundantGT    = 1 << 1
	flagZeroGrain      = 1 << 2
	flagCompressed     = 1 << 16
	flagMarkers        = 1 << 17
	compressionDeflate = 1

	// gdAtEnd in gdOffset says the real header is in the footer
	// (streamOptimized).
	gdAtEnd = 0xffffffffffffffff

	// Grain table entries with a special meaning.
	gteUnallocated = 0
	gteZeroed      = 1

	// Marker types of a streamOptimized extent.
	markerEOS    = 0
	markerGT     = 1
	markerGD     = 2
	markerFooter = 3

	// Bounds that keep a hostile header from making us allocate or loop
	// without end.
	maxGrainSectors   = 1 << 11 // 1 MiB grains
	maxGTEsPerGT      = 1 << 13
	maxCapacitySector = 1 << 47 // 64 PiB
	maxDescriptorSize = 1 << 20
)

// SparseHeader is the header of a hosted sparse extent, with the spec's
// field names. Offsets and sizes are in sectors of 512 bytes.
type SparseHeader struct {
	Version           uint32
	Flags             uint32
	Capacity          uint64
	GrainSize         uint64
	DescriptorOffset  uint64
	DescriptorSize    uint64
	NumGTEsPerGT      uint32
	RGDOffset         uint64
	GDOffset          uint64
	OverHead          uint64
	UncleanShutdown   bool
	CompressAlgorithm uint16
}

func corruptf(format string, args ...any) error {
	return fmt.Errorf("vmdk: %w: "+format, append([]any{block.ErrCorrupt}, args...)...)
}

// parseSparseHeader decodes a sparse extent header (b is at least 512
// bytes) without validating it against a file.
func parseSparseHeader(b []byte) (SparseHeader, error) {
	if len(b) < headerSize {
		return SparseHeader{}, corruptf("sparse header too short (%d bytes)", len(b))
	}
	if string(b[:4]) != Magic {
		return SparseHeader{}, corruptf("no sparse extent magic %q", Magic)
	}
	le := binary.LittleEndian
	h := SparseHeader{
		Version:           le.Uint32(b[4:]),
		Flags:             le.Uint32(b[8:]),
		Capacity:          le.Uint64(b[12:]),
		GrainSize:         le.Uint64(b[20:]),
		DescriptorOffset:  le.Uint64(b[28:]),
		DescriptorSize:    le.Uint64(b[36:]),
		NumGTEsPerGT:      le.Uint32(b[44:]),
		RGDOffset:         le.Uint64(b[48:]),
		GDOffset:          le.Uint64(b[56:]),
		OverHead:          le.Uint64(b[64:]),
		UncleanShutdown:   b[72] != 0,
		CompressAlgorithm: le.Uint16(b[77:]),
	}
	return h, nil
}

// validate checks the header's fields against each other and against a
// file of fileSize bytes: grain size and table geometry in bounds, the
// grain directory inside the file.
func (h *SparseHeader) validate(fileSize int64) error {
	if h.Version < 1 || h.Version > 3 {
		return corruptf("unsupported sparse extent version %d", h.Version)
	}
	if h.GrainSize == 0 || h.GrainSize > maxGrainSectors || h.GrainSize&(h.GrainSize-1) != 0 {
		return corruptf("grain size %d sectors is not a power of two up to %d", h.GrainSize, maxGrainSectors)
	}
	if h.NumGTEsPerGT == 0 || h.NumGTEsPerGT > maxGTEsPerGT {
		return corruptf("%d grain table entries per table (at most %d)", h.NumGTEsPerGT, maxGTEsPerGT)
	}
	if h.Capacity > maxCapacitySector {
		return corruptf("capacity %d sectors is too large", h.Capacity)
	}
	if h.Flags&flagCompressed != 0 && h.CompressAlgorithm != compressionDeflate {
		return corruptf("unknown compression algorithm %d", h.CompressAlgorithm)
	}
	n := h.numGDEs()
	if h.GDOffset == 0 || h.GDOffset > uint64(fileSize)/sectorSize ||
		n > (uint64(fileSize)-h.GDOffset*sectorSize)/4 {
		return corruptf("grain directory of %d entries at sector %d does not fit a file of %d bytes", n, h.GDOffset, fileSize)
	}
	return nil
}

// grainBytes is the grain size in bytes.
func (h *SparseHeader) grainBytes() int64 { return int64(h.GrainSize) * sectorSize }

// gtCoverage is the number of bytes one grain table maps.
func (h *SparseHeader) gtCoverage() int64 { return int64(h.NumGTEsPerGT) * h.grainBytes() }

// numGDEs is the number of grain directory entries the capacity needs.
// Preconditions: GrainSize and NumGTEsPerGT are in bounds.
func (h *SparseHeader) numGDEs() uint64 {
	per := uint64(h.NumGTEsPerGT) * h.GrainSize
	return (h.Capacity + per - 1) / per
}

// marker is a streamOptimized marker: a sector holding a value, a size
// (0 for metadata markers) and a type.
type marker struct {
	Val  uint64
	Size uint32
	Type uint32
}

func parseMarker(b []byte) marker {
	le := binary.LittleEndian
	return marker{Val: le.Uint64(b), Size: le.Uint32(b[8:]), Type: le.Uint32(b[12:])}
}

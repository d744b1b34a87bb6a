package vhdx

import (
	"encoding/binary"
	"fmt"

	"github.com/thinblk/thinblk/block"
)

// BAT entry states ([MS-VHDX] 2.5.1).
const (
	payloadNotPresent       = 0
	payloadUndefined        = 1
	payloadZero             = 2
	payloadUnmapped         = 3
	payloadFullyPresent     = 6
	payloadPartiallyPresent = 7

	bitmapNotPresent = 0
	bitmapPresent    = 6

	stateMask      = 7
	offsetShift    = 20
	sectorsInChunk = 1 << 23 // sectors described by one sector bitmap block
	bitmapBlock    = 1 << 20 // bytes in a sector bitmap block
)

// geometry is the BAT layout derived from the metadata.
type geometry struct {
	blockSize  int64
	sectorSize int64
	chunkRatio int64 // payload blocks per sector bitmap block
	dataBlocks int64
	entries    int64 // total BAT entries
}

func newGeometry(m *Metadata) geometry {
	g := geometry{blockSize: int64(m.BlockSize), sectorSize: int64(m.LogicalSectorSize)}
	g.chunkRatio = sectorsInChunk * g.sectorSize / g.blockSize
	g.dataBlocks = (int64(m.VirtualSize) + g.blockSize - 1) / g.blockSize
	if m.HasParent {
		g.entries = (g.dataBlocks + g.chunkRatio - 1) / g.chunkRatio * (g.chunkRatio + 1)
	} else {
		g.entries = g.dataBlocks + (g.dataBlocks-1)/g.chunkRatio
	}
	return g
}

// payloadIndex is the BAT index of payload block i.
func (g geometry) payloadIndex(i int64) int64 { return i + i/g.chunkRatio }

// bitmapIndex is the BAT index of the sector bitmap of the chunk holding
// payload block i.
func (g geometry) bitmapIndex(i int64) int64 {
	c := i / g.chunkRatio
	return c*(g.chunkRatio+1) + g.chunkRatio
}

// readBAT reads the table (entries are bounded by the region, which fits
// the file).
func readBAT(file block.Driver, r region, g geometry) ([]uint64, error) {
	if g.entries*8 > int64(r.Length) {
		return nil, fmt.Errorf("vhdx: %w: BAT region of %d bytes is too small for %d entries", block.ErrCorrupt, r.Length, g.entries)
	}
	bat := make([]uint64, g.entries)
	buf := make([]byte, min(g.entries*8, 1<<20))
	for i := int64(0); i < g.entries; {
		n := min(g.entries-i, int64(len(buf))/8)
		if err := file.Pread(buf[:n*8], int64(r.Offset)+i*8); err != nil {
			return nil, err
		}
		for j := int64(0); j < n; j++ {
			bat[i+j] = binary.LittleEndian.Uint64(buf[j*8:])
		}
		i += n
	}
	return bat, nil
}

func entryState(e uint64) uint64               { return e & stateMask }
func entryOffset(e uint64) int64               { return int64(e>>offsetShift) << 20 }
func makeEntry(state uint64, off int64) uint64 { return uint64(off>>20)<<offsetShift | state }

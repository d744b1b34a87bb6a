package vhdx

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/thinblk/thinblk/block"
)

// Fixed layout of the first MiB ([MS-VHDX] 2.2). All fields little-endian.
const (
	fileSignature   = "vhdxfile"
	headerSignature = "head"
	regionSignature = "regi"
	metaSignature   = "metadata"

	header1Offset = 64 << 10
	header2Offset = 128 << 10
	headerSize    = 4 << 10
	region1Offset = 192 << 10
	region2Offset = 256 << 10
	regionSize    = 64 << 10

	maxRegionEntries = 2047
	mib              = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crcWithout is the CRC-32C of b with the 4 bytes at off counted as zeros.
func crcWithout(b []byte, off int) uint32 {
	c := crc32.Update(0, castagnoli, b[:off])
	c = crc32.Update(c, castagnoli, []byte{0, 0, 0, 0})
	return crc32.Update(c, castagnoli, b[off+4:])
}

// Header is one of the two image headers.
type Header struct {
	SequenceNumber uint64
	FileWriteGUID  GUID
	DataWriteGUID  GUID
	LogGUID        GUID
	LogVersion     uint16
	Version        uint16
	LogLength      uint32
	LogOffset      uint64
}

// parseHeader decodes a 4 KiB header and checks its signature and CRC.
func parseHeader(b []byte) (*Header, error) {
	if string(b[:4]) != headerSignature {
		return nil, fmt.Errorf("signature %q", b[:4])
	}
	if got, want := binary.LittleEndian.Uint32(b[4:]), crcWithout(b[:headerSize], 4); got != want {
		return nil, fmt.Errorf("checksum 0x%08x, computed 0x%08x", got, want)
	}
	h := &Header{SequenceNumber: binary.LittleEndian.Uint64(b[8:])}
	copy(h.FileWriteGUID[:], b[16:])
	copy(h.DataWriteGUID[:], b[32:])
	copy(h.LogGUID[:], b[48:])
	h.LogVersion = binary.LittleEndian.Uint16(b[64:])
	h.Version = binary.LittleEndian.Uint16(b[66:])
	h.LogLength = binary.LittleEndian.Uint32(b[68:])
	h.LogOffset = binary.LittleEndian.Uint64(b[72:])
	return h, nil
}

// encode returns the 4 KiB header with its checksum.
func (h *Header) encode() []byte {
	b := make([]byte, headerSize)
	copy(b, headerSignature)
	binary.LittleEndian.PutUint64(b[8:], h.SequenceNumber)
	copy(b[16:], h.FileWriteGUID[:])
	copy(b[32:], h.DataWriteGUID[:])
	copy(b[48:], h.LogGUID[:])
	binary.LittleEndian.PutUint16(b[64:], h.LogVersion)
	binary.LittleEndian.PutUint16(b[66:], h.Version)
	binary.LittleEndian.PutUint32(b[68:], h.LogLength)
	binary.LittleEndian.PutUint64(b[72:], h.LogOffset)
	binary.LittleEndian.PutUint32(b[4:], crcWithout(b, 4))
	return b
}

// readHeaders reads both headers and returns the current one: the valid
// header with the higher sequence number, and its file offset.
func readHeaders(file block.Driver) (*Header, int64, error) {
	var best *Header
	var bestOff int64
	var errs [2]error
	for i, off := range []int64{header1Offset, header2Offset} {
		b := make([]byte, headerSize)
		if err := file.Pread(b, off); err != nil {
			return nil, 0, err
		}
		h, err := parseHeader(b)
		if err != nil {
			errs[i] = err
			continue
		}
		if best == nil || h.SequenceNumber > best.SequenceNumber {
			best, bestOff = h, off
		}
	}
	if best == nil {
		return nil, 0, fmt.Errorf("vhdx: %w: no valid header (header 1: %v; header 2: %v)", block.ErrCorrupt, errs[0], errs[1])
	}
	if best.Version != 1 {
		return nil, 0, fmt.Errorf("vhdx: %w: header version %d (1 is known)", block.ErrNotSupported, best.Version)
	}
	return best, bestOff, nil
}

// region is one region table entry.
type region struct {
	GUID     GUID
	Offset   uint64
	Length   uint32
	Required bool
}

// parseRegionTable decodes a 64 KiB region table, checks its CRC, and
// checks every entry against the file size.
func parseRegionTable(b []byte, fileSize int64) ([]region, error) {
	if string(b[:4]) != regionSignature {
		return nil, fmt.Errorf("signature %q", b[:4])
	}
	if got, want := binary.LittleEndian.Uint32(b[4:]), crcWithout(b[:regionSize], 4); got != want {
		return nil, fmt.Errorf("checksum 0x%08x, computed 0x%08x", got, want)
	}
	n := binary.LittleEndian.Uint32(b[8:])
	if n > maxRegionEntries {
		return nil, fmt.Errorf("%d entries (at most %d)", n, maxRegionEntries)
	}
	rs := make([]region, n)
	for i := range rs {
		e := b[16+32*i:]
		copy(rs[i].GUID[:], e)
		rs[i].Offset = binary.LittleEndian.Uint64(e[16:])
		rs[i].Length = binary.LittleEndian.Uint32(e[24:])
		rs[i].Required = binary.LittleEndian.Uint32(e[28:])&1 != 0
		if rs[i].Offset%mib != 0 || rs[i].Length%mib != 0 || rs[i].Offset < mib {
			return nil, fmt.Errorf("region %s at %d length %d is not MiB aligned past the first MiB", rs[i].GUID, rs[i].Offset, rs[i].Length)
		}
		if rs[i].Offset > uint64(fileSize) || int64(rs[i].Length) > fileSize-int64(rs[i].Offset) {
			return nil, fmt.Errorf("region %s at %d length %d does not fit a file of %d bytes", rs[i].GUID, rs[i].Offset, rs[i].Length, fileSize)
		}
	}
	return rs, nil
}

// encodeRegionTable returns a 64 KiB region table with its checksum.
func encodeRegionTable(rs []region) []byte {
	b := make([]byte, regionSize)
	copy(b, regionSignature)
	binary.LittleEndian.PutUint32(b[8:], uint32(len(rs)))
	for i, r := range rs {
		e := b[16+32*i:]
		copy(e, r.GUID[:])
		binary.LittleEndian.PutUint64(e[16:], r.Offset)
		binary.LittleEndian.PutUint32(e[24:], r.Length)
		if r.Required {
			binary.LittleEndian.PutUint32(e[28:], 1)
		}
	}
	binary.LittleEndian.PutUint32(b[4:], crcWithout(b, 4))
	return b
}

// readRegions returns the BAT and metadata regions from the first valid
// region table. An unknown region marked required is refused.
func readRegions(file block.Driver) (bat, meta region, err error) {
	var errs [2]error
	for i, off := range []int64{region1Offset, region2Offset} {
		b := make([]byte, regionSize)
		if err := file.Pread(b, off); err != nil {
			return bat, meta, err
		}
		rs, err := parseRegionTable(b, file.Size())
		if err != nil {
			errs[i] = err
			continue
		}
		var haveBAT, haveMeta bool
		for _, r := range rs {
			switch r.GUID {
			case regionBAT:
				bat, haveBAT = r, true
			case regionMetadata:
				meta, haveMeta = r, true
			default:
				if r.Required {
					return bat, meta, fmt.Errorf("vhdx: %w: unknown required region %s", block.ErrNotSupported, r.GUID)
				}
			}
		}
		if !haveBAT || !haveMeta {
			errs[i] = fmt.Errorf("no BAT or no metadata region")
			continue
		}
		return bat, meta, nil
	}
	return bat, meta, fmt.Errorf("vhdx: %w: no valid region table (table 1: %v; table 2: %v)", block.ErrCorrupt, errs[0], errs[1])
}

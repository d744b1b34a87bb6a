package qcow2

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/thinblk/thinblk/block"
)

// Magic is the first four bytes of every qcow2 image.
const Magic = "QFI\xfb"

// Incompatible feature bits.
const (
	IncompatDirty        = 1 << 0
	IncompatCorrupt      = 1 << 1
	IncompatDataFile     = 1 << 2
	IncompatCompression  = 1 << 3
	IncompatExtendedL2   = 1 << 4
	incompatSupported    = IncompatDirty | IncompatCorrupt | IncompatCompression | IncompatExtendedL2
	CompatLazyRefcounts  = 1 << 0
	AutoclearBitmaps     = 1 << 0
	AutoclearRawDataFile = 1 << 1
)

// Compression types (header byte 104).
const (
	CompressionDeflate = 0
	CompressionZstd    = 1
)

// Header extension types.
const (
	extEnd           = 0x00000000
	extBackingFormat = 0xe2792aca
	extFeatureTable  = 0x6803f857
	extBitmaps       = 0x23852875
	extCrypto        = 0x0537be77
	extDataFile      = 0x44415441
)

// Implementation limits, as QEMU's, that keep hostile headers from making
// us allocate giant tables.
const (
	minClusterBits      = 9
	maxClusterBits      = 21
	maxL1Bytes          = 32 << 20
	maxRefcountTable    = 8 << 20
	maxBackingName      = 1023
	maxSnapshots        = 65536
	v2HeaderLength      = 72
	v3HeaderLength      = 104
	headerCompressionAt = 104
)

// Extension is a header extension kept as raw bytes (unknown ones are
// preserved when the header is rewritten).
type Extension struct {
	Type uint32
	Data []byte
}

// FeatureName is one entry of the feature name table.
type FeatureName struct {
	Type uint8 // 0 incompatible, 1 compatible, 2 autoclear
	Bit  uint8
	Name string
}

// Header is the decoded image header and its extensions. Field names follow
// the spec.
type Header struct {
	Version               uint32
	BackingFileOffset     uint64
	BackingFileSize       uint32
	ClusterBits           uint32
	Size                  uint64
	CryptMethod           uint32
	L1Size                uint32
	L1TableOffset         uint64
	RefcountTableOffset   uint64
	RefcountTableClusters uint32
	NbSnapshots           uint32
	SnapshotsOffset       uint64
	IncompatibleFeatures  uint64
	CompatibleFeatures    uint64
	AutoclearFeatures     uint64
	RefcountOrder         uint32
	HeaderLength          uint32
	CompressionType       uint8
	// extraFields holds header bytes from 105 up to HeaderLength, preserved
	// verbatim.
	extraFields []byte

	BackingFile   string
	BackingFormat string
	FeatureNames  []FeatureName
	// Extensions are the header extensions other than backing format and
	// feature name table, in file order.
	Extensions []Extension
}

// ClusterSize returns 1 << ClusterBits.
func (h *Header) ClusterSize() int64 { return 1 << h.ClusterBits }

// RefcountBits returns the width of one refcount entry.
func (h *Header) RefcountBits() uint32 { return 1 << h.RefcountOrder }

// ExtendedL2 reports whether L2 entries carry subcluster bitmaps.
func (h *Header) ExtendedL2() bool { return h.IncompatibleFeatures&IncompatExtendedL2 != 0 }

// l2EntrySize is 8, or 16 with extended L2 entries.
func (h *Header) l2EntrySize() int64 {
	if h.ExtendedL2() {
		return 16
	}
	return 8
}

// l2Entries is the number of entries in one L2 table.
func (h *Header) l2Entries() int64 { return h.ClusterSize() / h.l2EntrySize() }

// corruptf returns an error wrapping block.ErrCorrupt.
func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: qcow2: %s", block.ErrCorrupt, fmt.Sprintf(format, args...))
}

// parseHeader decodes and validates the header at the start of buf (the
// first cluster of the image, or as much of it as exists), against a file
// of fileSize bytes. It never allocates more than buf's size.
func parseHeader(buf []byte, fileSize int64) (*Header, error) {
	if len(buf) < v2HeaderLength {
		return nil, corruptf("image too short for a header (%d bytes)", len(buf))
	}
	if string(buf[:4]) != Magic {
		return nil, fmt.Errorf("%w: qcow2: bad magic", block.ErrInvalid)
	}
	be := binary.BigEndian
	h := &Header{
		Version:               be.Uint32(buf[4:]),
		BackingFileOffset:     be.Uint64(buf[8:]),
		BackingFileSize:       be.Uint32(buf[16:]),
		ClusterBits:           be.Uint32(buf[20:]),
		Size:                  be.Uint64(buf[24:]),
		CryptMethod:           be.Uint32(buf[32:]),
		L1Size:                be.Uint32(buf[36:]),
		L1TableOffset:         be.Uint64(buf[40:]),
		RefcountTableOffset:   be.Uint64(buf[48:]),
		RefcountTableClusters: be.Uint32(buf[56:]),
		NbSnapshots:           be.Uint32(buf[60:]),
		SnapshotsOffset:       be.Uint64(buf[64:]),
		RefcountOrder:         4,
		HeaderLength:          v2HeaderLength,
	}
	switch h.Version {
	case 2:
	case 3:
		if len(buf) < v3HeaderLength {
			return nil, corruptf("image too short for a version 3 header")
		}
		h.IncompatibleFeatures = be.Uint64(buf[72:])
		h.CompatibleFeatures = be.Uint64(buf[80:])
		h.AutoclearFeatures = be.Uint64(buf[88:])
		h.RefcountOrder = be.Uint32(buf[96:])
		h.HeaderLength = be.Uint32(buf[100:])
		if h.HeaderLength < v3HeaderLength || h.HeaderLength%8 != 0 {
			return nil, corruptf("invalid header_length %d", h.HeaderLength)
		}
	default:
		return nil, fmt.Errorf("%w: qcow2: unsupported version %d", block.ErrNotSupported, h.Version)
	}
	if h.ClusterBits < minClusterBits || h.ClusterBits > maxClusterBits {
		return nil, fmt.Errorf("%w: qcow2: cluster_bits %d outside %d..%d", block.ErrNotSupported, h.ClusterBits, minClusterBits, maxClusterBits)
	}
	cs := h.ClusterSize()
	if int64(h.HeaderLength) > cs || int64(h.HeaderLength) > int64(len(buf)) {
		return nil, corruptf("header_length %d exceeds the first cluster", h.HeaderLength)
	}
	if h.HeaderLength > headerCompressionAt {
		h.CompressionType = buf[headerCompressionAt]
		h.extraFields = append([]byte(nil), buf[headerCompressionAt+1:h.HeaderLength]...)
	}
	if h.RefcountOrder > 6 {
		return nil, corruptf("refcount_order %d > 6", h.RefcountOrder)
	}
	// Header extensions (v3 only in practice, but v2 images may carry the
	// backing format extension too).
	if err := h.parseExtensions(buf); err != nil {
		return nil, err
	}
	if err := h.checkFeatures(); err != nil {
		return nil, err
	}
	if h.CryptMethod != 0 {
		return nil, fmt.Errorf("%w: qcow2: encrypted images (crypt_method %d)", block.ErrNotSupported, h.CryptMethod)
	}
	if h.ExtendedL2() && h.ClusterBits < 14 {
		return nil, corruptf("extended L2 entries need cluster_bits >= 14, have %d", h.ClusterBits)
	}
	switch {
	case h.CompressionType > CompressionZstd:
		return nil, fmt.Errorf("%w: qcow2: unknown compression type %d", block.ErrNotSupported, h.CompressionType)
	case (h.CompressionType != 0) != (h.IncompatibleFeatures&IncompatCompression != 0):
		return nil, corruptf("compression_type %d does not match the compression type feature bit", h.CompressionType)
	}
	// Backing file name.
	if h.BackingFileOffset != 0 {
		if h.BackingFileSize > maxBackingName {
			return nil, corruptf("backing file name too long (%d bytes)", h.BackingFileSize)
		}
		end := h.BackingFileOffset + uint64(h.BackingFileSize)
		if h.BackingFileOffset >= uint64(cs) || end > uint64(cs) || end > uint64(len(buf)) {
			return nil, corruptf("backing file name outside the first cluster")
		}
		h.BackingFile = string(buf[h.BackingFileOffset:end])
	}
	// Sizes and tables.
	if h.Size > 1<<62 {
		return nil, corruptf("virtual size %d too large", h.Size)
	}
	if err := h.checkTables(fileSize); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *Header) parseExtensions(buf []byte) error {
	end := int64(len(buf))
	if cs := h.ClusterSize(); end > cs {
		end = cs
	}
	if h.BackingFileOffset != 0 && int64(h.BackingFileOffset) < end && h.BackingFileOffset >= uint64(h.HeaderLength) {
		end = int64(h.BackingFileOffset)
	}
	off := int64(h.HeaderLength)
	seen := map[uint32]bool{}
	for {
		if off+8 > end {
			// A v2 header with no room for extensions simply has none.
			return nil
		}
		typ := binary.BigEndian.Uint32(buf[off:])
		length := int64(binary.BigEndian.Uint32(buf[off+4:]))
		if typ == extEnd {
			return nil
		}
		off += 8
		if length > end-off {
			return corruptf("header extension 0x%08x overruns the header area", typ)
		}
		data := buf[off : off+length]
		off += (length + 7) &^ 7
		if seen[typ] {
			return corruptf("header extension 0x%08x appears twice", typ)
		}
		seen[typ] = true
		switch typ {
		case extBackingFormat:
			h.BackingFormat = string(data)
		case extFeatureTable:
			for i := 0; i+48 <= len(data); i += 48 {
				name := data[i+2 : i+48]
				if j := bytes.IndexByte(name, 0); j >= 0 {
					name = name[:j]
				}
				h.FeatureNames = append(h.FeatureNames, FeatureName{Type: data[i], Bit: data[i+1], Name: string(name)})
			}
		default:
			h.Extensions = append(h.Extensions, Extension{Type: typ, Data: append([]byte(nil), data...)})
		}
	}
}

// checkFeatures refuses unknown incompatible features, naming them from the
// feature name table when it has them.
func (h *Header) checkFeatures() error {
	unknown := h.IncompatibleFeatures &^ incompatSupported
	if h.IncompatibleFeatures&IncompatDataFile != 0 {
		unknown |= IncompatDataFile
	}
	if unknown == 0 {
		return nil
	}
	var names []string
	for bit := uint8(0); bit < 64; bit++ {
		if unknown&(1<<bit) == 0 {
			continue
		}
		name := fmt.Sprintf("unknown incompatible feature bit %d", bit)
		if bit == 2 {
			name = "external data file"
		}
		for _, f := range h.FeatureNames {
			if f.Type == 0 && f.Bit == bit && f.Name != "" {
				name = f.Name
			}
		}
		names = append(names, name)
	}
	return fmt.Errorf("%w: qcow2: unsupported incompatible features: %s", block.ErrNotSupported, strings.Join(names, ", "))
}

// checkTables validates table offsets and sizes against the file size so
// that a hostile header cannot make us allocate or read giant tables.
func (h *Header) checkTables(fileSize int64) error {
	cs := uint64(h.ClusterSize())
	aligned := func(v uint64) bool { return v%cs == 0 }
	within := func(off, n uint64) bool {
		return off <= uint64(fileSize) && n <= uint64(fileSize)-off
	}
	// L1 table.
	l2Cover := uint64(h.l2Entries()) * cs
	need := (h.Size + l2Cover - 1) / l2Cover
	if uint64(h.L1Size) < need {
		return corruptf("l1_size %d too small for virtual size %d (need %d)", h.L1Size, h.Size, need)
	}
	if uint64(h.L1Size)*8 > maxL1Bytes {
		return corruptf("l1_size %d too large", h.L1Size)
	}
	if h.L1Size > 0 {
		if !aligned(h.L1TableOffset) || h.L1TableOffset == 0 {
			return corruptf("l1_table_offset 0x%x not cluster aligned", h.L1TableOffset)
		}
		if !within(h.L1TableOffset, uint64(h.L1Size)*8) {
			return corruptf("L1 table (0x%x, %d entries) past end of file (%d bytes)", h.L1TableOffset, h.L1Size, fileSize)
		}
	}
	// Refcount table.
	rtBytes := uint64(h.RefcountTableClusters) * cs
	if h.RefcountTableClusters == 0 {
		return corruptf("refcount_table_clusters is 0")
	}
	if rtBytes > maxRefcountTable {
		return corruptf("refcount table too large (%d clusters)", h.RefcountTableClusters)
	}
	if !aligned(h.RefcountTableOffset) || h.RefcountTableOffset == 0 {
		return corruptf("refcount_table_offset 0x%x not cluster aligned", h.RefcountTableOffset)
	}
	if !within(h.RefcountTableOffset, rtBytes) {
		return corruptf("refcount table (0x%x, %d clusters) past end of file (%d bytes)", h.RefcountTableOffset, h.RefcountTableClusters, fileSize)
	}
	if overlaps(h.L1TableOffset, uint64(h.L1Size)*8, h.RefcountTableOffset, rtBytes) || overlaps(0, cs, h.L1TableOffset, uint64(h.L1Size)*8) || overlaps(0, cs, h.RefcountTableOffset, rtBytes) {
		return corruptf("header, L1 table and refcount table overlap")
	}
	// Snapshot table.
	if h.NbSnapshots > maxSnapshots {
		return corruptf("too many snapshots (%d)", h.NbSnapshots)
	}
	if h.NbSnapshots > 0 {
		if !aligned(h.SnapshotsOffset) || h.SnapshotsOffset == 0 {
			return corruptf("snapshots_offset 0x%x not cluster aligned", h.SnapshotsOffset)
		}
		if !within(h.SnapshotsOffset, uint64(h.NbSnapshots)*40) {
			return corruptf("snapshot table past end of file")
		}
	}
	return nil
}

func overlaps(a, an, b, bn uint64) bool {
	if an == 0 || bn == 0 {
		return false
	}
	return a < b+bn && b < a+an
}

// encode returns the header, its extensions and the backing file name,
// laid out for the first cluster. It fails if they do not fit.
func (h *Header) encode() ([]byte, error) {
	cs := int(h.ClusterSize())
	var b bytes.Buffer
	be := binary.BigEndian
	fixed := make([]byte, v2HeaderLength)
	copy(fixed, Magic)
	be.PutUint32(fixed[4:], h.Version)
	// backing file offset/size are filled in below.
	be.PutUint32(fixed[20:], h.ClusterBits)
	be.PutUint64(fixed[24:], h.Size)
	be.PutUint32(fixed[32:], h.CryptMethod)
	be.PutUint32(fixed[36:], h.L1Size)
	be.PutUint64(fixed[40:], h.L1TableOffset)
	be.PutUint64(fixed[48:], h.RefcountTableOffset)
	be.PutUint32(fixed[56:], h.RefcountTableClusters)
	be.PutUint32(fixed[60:], h.NbSnapshots)
	be.PutUint64(fixed[64:], h.SnapshotsOffset)
	b.Write(fixed)
	if h.Version >= 3 {
		v3 := make([]byte, 32)
		be.PutUint64(v3[0:], h.IncompatibleFeatures)
		be.PutUint64(v3[8:], h.CompatibleFeatures)
		be.PutUint64(v3[16:], h.AutoclearFeatures)
		be.PutUint32(v3[24:], h.RefcountOrder)
		hl := h.HeaderLength
		if hl < v3HeaderLength+8 {
			hl = v3HeaderLength + 8
			if len(h.extraFields) > 7 {
				hl = uint32(headerCompressionAt+1+len(h.extraFields)+7) &^ 7
			}
		}
		h.HeaderLength = hl
		be.PutUint32(v3[28:], hl)
		b.Write(v3)
		rest := make([]byte, hl-v3HeaderLength)
		rest[0] = h.CompressionType
		copy(rest[1:], h.extraFields)
		b.Write(rest)
	}
	putExt := func(typ uint32, data []byte) {
		var hdr [8]byte
		be.PutUint32(hdr[0:], typ)
		be.PutUint32(hdr[4:], uint32(len(data)))
		b.Write(hdr[:])
		b.Write(data)
		if pad := (8 - len(data)%8) % 8; pad > 0 {
			b.Write(make([]byte, pad))
		}
	}
	if h.BackingFormat != "" {
		putExt(extBackingFormat, []byte(h.BackingFormat))
	}
	if h.Version >= 3 {
		if len(h.FeatureNames) > 0 {
			ft := make([]byte, 48*len(h.FeatureNames))
			for i, f := range h.FeatureNames {
				ft[48*i] = f.Type
				ft[48*i+1] = f.Bit
				copy(ft[48*i+2:48*i+48], f.Name)
			}
			putExt(extFeatureTable, ft)
		}
	}
	for _, e := range h.Extensions {
		putExt(e.Type, e.Data)
	}
	putExt(extEnd, nil)
	if h.BackingFile != "" {
		if len(h.BackingFile) > maxBackingName {
			return nil, fmt.Errorf("%w: qcow2: backing file name longer than %d bytes", block.ErrInvalid, maxBackingName)
		}
		h.BackingFileOffset = uint64(b.Len())
		h.BackingFileSize = uint32(len(h.BackingFile))
		b.WriteString(h.BackingFile)
	} else {
		h.BackingFileOffset, h.BackingFileSize = 0, 0
	}
	out := b.Bytes()
	be.PutUint64(out[8:], h.BackingFileOffset)
	be.PutUint32(out[16:], h.BackingFileSize)
	if len(out) > cs {
		return nil, fmt.Errorf("%w: qcow2: header and extensions (%d bytes) do not fit in one cluster", block.ErrInvalid, len(out))
	}
	return out, nil
}

// defaultFeatureNames is the feature name table written into new v3 images.
func defaultFeatureNames() []FeatureName {
	return []FeatureName{
		{0, 0, "dirty bit"},
		{0, 1, "corrupt bit"},
		{0, 2, "external data file"},
		{0, 3, "compression type"},
		{0, 4, "extended L2 entries"},
		{1, 0, "lazy refcounts"},
		{2, 0, "bitmaps"},
		{2, 1, "raw external data"},
	}
}

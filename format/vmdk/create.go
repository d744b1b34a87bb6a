package vmdk

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/protocol/file"
)

// Layout of the streamOptimized images Create makes (as VMware's OVF tool
// makes them): header, embedded descriptor, grains from sector
// streamOverHead, then grain tables, grain directory, footer and
// end-of-stream marker.
const (
	streamGrainSectors  = 128 // 64 KiB grains
	streamGTEsPerGT     = 512
	streamDescOffset    = 1
	streamDescSectors   = 20
	streamOverHead      = 128 // grains start at 64 KiB
	streamFlags         = flagValidNewline | flagCompressed | flagMarkers
	streamVersion       = 3
	defaultAdapterType  = "ide"
	defaultHWVersion    = "4"
	defaultToolsVersion = "2147483647"
)

// Create makes a VMDK called name, subformat monolithicSparse (the
// default, as qemu-img; with a backing file it is a delta disk) or
// streamOptimized (what OVA packages and vSphere import take); other
// subformats fail with block.ErrNotSupported. Options as qemu-img's:
// subformat, adapter_type (ide, lsilogic, buslogic, legacyESX), hwversion,
// zeroed_grain (monolithicSparse). The new image is empty and complete (it
// reads as zeros, or as its parent); opening a new streamOptimized disk
// writable gives a sequential writer (see streamWriter).
func Create(name string, o image.CreateOptions) error {
	sub, adapter, hw, zeroed := "monolithicSparse", defaultAdapterType, defaultHWVersion, false
	for k, v := range o.Options {
		switch k {
		case "subformat":
			sub = v
		case "adapter_type":
			switch v {
			case "ide", "lsilogic", "buslogic", "legacyESX":
			default:
				return fmt.Errorf("vmdk: %w: adapter_type %q (ide, lsilogic, buslogic or legacyESX)", block.ErrInvalid, v)
			}
			adapter = v
		case "zeroed_grain":
			switch v {
			case "on", "true":
				zeroed = true
			case "off", "false":
				zeroed = false
			default:
				return fmt.Errorf("vmdk: %w: zeroed_grain=%q (on or off)", block.ErrInvalid, v)
			}
		case "hwversion":
			if v == "" || strings.ContainsAny(v, "\"\n") {
				return fmt.Errorf("vmdk: %w: hwversion %q", block.ErrInvalid, v)
			}
			hw = v
		default:
			return fmt.Errorf("vmdk: %w: unknown creation option %q (vmdk takes subformat, adapter_type, hwversion)", block.ErrInvalid, k)
		}
	}
	switch sub {
	case "monolithicSparse":
		return createSparse(name, o, adapter, hw, zeroed)
	case "streamOptimized":
	default:
		return fmt.Errorf("vmdk: %w: thinblk creates subformat monolithicSparse or streamOptimized, not %s", block.ErrNotSupported, sub)
	}
	if o.Backing != "" {
		return fmt.Errorf("vmdk: %w: a streamOptimized disk has no parent", block.ErrNotSupported)
	}
	if zeroed {
		return fmt.Errorf("vmdk: %w: zeroed_grain with streamOptimized", block.ErrInvalid)
	}
	if o.Size < 0 || o.Size > maxCapacitySector*sectorSize {
		return fmt.Errorf("vmdk: %w: size %d", block.ErrInvalid, o.Size)
	}
	capacity := (o.Size + sectorSize - 1) / sectorSize
	h := SparseHeader{
		Version:           streamVersion,
		Flags:             streamFlags,
		Capacity:          uint64(capacity),
		GrainSize:         streamGrainSectors,
		DescriptorOffset:  streamDescOffset,
		DescriptorSize:    streamDescSectors,
		NumGTEsPerGT:      streamGTEsPerGT,
		GDOffset:          gdAtEnd,
		OverHead:          streamOverHead,
		CompressAlgorithm: compressionDeflate,
	}
	desc := descriptorText(filepath.Base(name), capacity, adapter, hw, "streamOptimized", 0xffffffff, "")
	if len(desc) > streamDescSectors*sectorSize {
		return fmt.Errorf("vmdk: %w: file name too long for the descriptor", block.ErrInvalid)
	}
	if err := file.Create(name, 0, file.PreallocOff); err != nil {
		return err
	}
	f, err := file.Open(name, file.Options{Growable: true})
	if err != nil {
		return err
	}
	head := make([]byte, streamOverHead*sectorSize)
	h.encode(head)
	copy(head[streamDescOffset*sectorSize:], desc)
	err = f.Pwrite(head, 0, 0)
	if err == nil {
		// The tail of an empty stream: an empty grain directory, footer.
		w := &streamWriter{file: f, hdr: h, grain: h.grainBytes(), appendAt: streamOverHead * sectorSize, gtes: nil}
		err = w.writeTailLocked()
	}
	if err == nil {
		err = f.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// descriptorText is the embedded descriptor of a new disk of one sparse
// extent; parentHint "" for a disk without parent.
func descriptorText(extentName string, capacity int64, adapter, hw, createType string, parentCID uint32, parentHint string) string {
	var cid [4]byte
	_, _ = rand.Read(cid[:])
	cylinders := min(capacity/(16*63), 65535)
	parent := ""
	if parentHint != "" {
		parent = fmt.Sprintf("parentFileNameHint=%q\n", parentHint)
	}
	return fmt.Sprintf(`# Disk DescriptorFile
version=1
CID=%08x
parentCID=%08x
createType="%s"
%s
# Extent description
RW %d SPARSE "%s"

# The Disk Data Base
#DDB

ddb.virtualHWVersion = "%s"
ddb.geometry.cylinders = "%d"
ddb.geometry.heads = "16"
ddb.geometry.sectors = "63"
ddb.adapterType = "%s"
ddb.toolsVersion = "%s"
`, binary.LittleEndian.Uint32(cid[:]), parentCID, createType, parent, capacity, extentName, hw, cylinders, adapter, defaultToolsVersion)
}

// encode writes the header into b[:headerSize].
func (h *SparseHeader) encode(b []byte) {
	clear(b[:headerSize])
	copy(b, Magic)
	le := binary.LittleEndian
	le.PutUint32(b[4:], h.Version)
	le.PutUint32(b[8:], h.Flags)
	le.PutUint64(b[12:], h.Capacity)
	le.PutUint64(b[20:], h.GrainSize)
	le.PutUint64(b[28:], h.DescriptorOffset)
	le.PutUint64(b[36:], h.DescriptorSize)
	le.PutUint32(b[44:], h.NumGTEsPerGT)
	le.PutUint64(b[48:], h.RGDOffset)
	le.PutUint64(b[56:], h.GDOffset)
	le.PutUint64(b[64:], h.OverHead)
	if h.UncleanShutdown {
		b[72] = 1
	}
	b[73], b[74], b[75], b[76] = '\n', ' ', '\r', '\n'
	le.PutUint16(b[77:], h.CompressAlgorithm)
}

// createSparse makes a monolithicSparse disk as qemu-img lays it out:
// header, descriptor, grain directory and every grain table, grains from
// the next grain boundary. With o.Backing it is a delta disk over a vmdk
// parent (its size by default).
func createSparse(name string, o image.CreateOptions, adapter, hw string, zeroed bool) error {
	size, parentCID, hint := o.Size, uint32(0xffffffff), ""
	if o.Backing != "" {
		if o.BackingFormat != "" && o.BackingFormat != "vmdk" {
			return fmt.Errorf("vmdk: %w: the parent of a vmdk must be a vmdk, not %s", block.ErrNotSupported, o.BackingFormat)
		}
		if o.OpenBacking == nil {
			return fmt.Errorf("vmdk: %w: no way to open the parent %q", block.ErrInvalid, o.Backing)
		}
		p, err := o.OpenBacking(o.Backing, "vmdk")
		if err != nil {
			return fmt.Errorf("vmdk: opening parent %q: %w", o.Backing, err)
		}
		pimg, ok := block.As[*Image](p)
		if ok {
			parentCID = pimg.desc.CID
		}
		if size == 0 {
			size = p.Size()
		}
		p.Close()
		if !ok {
			return fmt.Errorf("vmdk: %w: parent %q is not a vmdk", block.ErrNotSupported, o.Backing)
		}
		hint = o.Backing
	}
	if size < 0 || size > maxCapacitySector*sectorSize {
		return fmt.Errorf("vmdk: %w: size %d", block.ErrInvalid, size)
	}
	capacity := (size + sectorSize - 1) / sectorSize
	h := SparseHeader{
		Version:           1,
		Flags:             flagValidNewline,
		Capacity:          uint64(capacity),
		GrainSize:         streamGrainSectors,
		DescriptorOffset:  streamDescOffset,
		DescriptorSize:    streamDescSectors,
		NumGTEsPerGT:      streamGTEsPerGT,
		GDOffset:          streamDescOffset + streamDescSectors,
		CompressAlgorithm: 0,
	}
	if zeroed {
		h.Version, h.Flags = 2, h.Flags|flagZeroGrain
	}
	gdEntries := int64(h.numGDEs())
	gdSectors := roundSector(gdEntries*4) / sectorSize
	gtSectors := roundSector(int64(h.NumGTEsPerGT)*4) / sectorSize
	firstGT := int64(h.GDOffset) + gdSectors
	metaEnd := firstGT + gdEntries*gtSectors
	h.OverHead = uint64((metaEnd + streamGrainSectors - 1) / streamGrainSectors * streamGrainSectors)
	if metaEnd > 1<<40/sectorSize {
		return fmt.Errorf("vmdk: %w: size %d needs too many grain tables", block.ErrInvalid, size)
	}
	desc := descriptorText(filepath.Base(name), capacity, adapter, hw, "monolithicSparse", parentCID, hint)
	if len(desc) > streamDescSectors*sectorSize {
		return fmt.Errorf("vmdk: %w: file names too long for the descriptor", block.ErrInvalid)
	}
	// Header, descriptor and directory; the grain tables are zeros (every
	// grain unallocated) and stay a hole of the file.
	meta := make([]byte, (int64(h.GDOffset)+gdSectors)*sectorSize)
	h.encode(meta)
	copy(meta[streamDescOffset*sectorSize:], desc)
	for i := int64(0); i < gdEntries; i++ {
		binary.LittleEndian.PutUint32(meta[int64(h.GDOffset)*sectorSize+i*4:], uint32(firstGT+i*gtSectors))
	}
	if err := file.Create(name, 0, file.PreallocOff); err != nil {
		return err
	}
	f, err := file.Open(name, file.Options{Growable: true})
	if err != nil {
		return err
	}
	err = f.Pwrite(meta, 0, 0)
	if err == nil {
		err = f.Pwrite([]byte{0}, int64(h.OverHead)*sectorSize-1, 0)
	}
	if err == nil {
		err = f.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

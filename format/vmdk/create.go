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

// Create makes a VMDK called name. thinblk writes subformat
// streamOptimized only (what OVA packages and vSphere import take); other
// subformats fail with block.ErrNotSupported. Options as qemu-img's:
// subformat, adapter_type (ide, lsilogic, buslogic, legacyESX), hwversion.
// The new image is empty and complete (it reads as zeros); opening it
// writable gives a sequential writer (see Open).
func Create(name string, o image.CreateOptions) error {
	if o.Backing != "" {
		return fmt.Errorf("vmdk: %w: creating a delta disk (backing file)", block.ErrNotSupported)
	}
	sub, adapter, hw := "", defaultAdapterType, defaultHWVersion
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
		case "hwversion":
			if v == "" || strings.ContainsAny(v, "\"\n") {
				return fmt.Errorf("vmdk: %w: hwversion %q", block.ErrInvalid, v)
			}
			hw = v
		default:
			return fmt.Errorf("vmdk: %w: unknown creation option %q (vmdk takes subformat, adapter_type, hwversion)", block.ErrInvalid, k)
		}
	}
	if sub != "streamOptimized" {
		if sub == "" {
			sub = "monolithicSparse (the default)"
		}
		return fmt.Errorf("vmdk: %w: thinblk writes subformat=streamOptimized only, not %s", block.ErrNotSupported, sub)
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
	desc := descriptorText(filepath.Base(name), capacity, adapter, hw)
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

// descriptorText is the embedded descriptor of a new streamOptimized disk.
func descriptorText(extentName string, capacity int64, adapter, hw string) string {
	var cid [4]byte
	_, _ = rand.Read(cid[:])
	cylinders := min(capacity/(16*63), 65535)
	return fmt.Sprintf(`# Disk DescriptorFile
version=1
CID=%08x
parentCID=ffffffff
createType="streamOptimized"

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
`, binary.LittleEndian.Uint32(cid[:]), capacity, extentName, hw, cylinders, adapter, defaultToolsVersion)
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

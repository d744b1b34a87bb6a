package vpc

import (
	"crypto/rand"
	"fmt"
	"os"
	"time"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
)

// CreateParams are the parsed creation options.
type CreateParams struct {
	Size int64
	// Subformat is "fixed" or "dynamic".
	Subformat string
	// ForceSize records Size exactly in the footer (creator "qem2")
	// instead of rounding it up to a CHS geometry (creator "qemu").
	ForceSize bool
}

// ParseCreateOptions reads qemu-img's vpc options: subformat (dynamic, the
// default as in qemu-img, or fixed) and force_size.
func ParseCreateOptions(o image.CreateOptions) (CreateParams, error) {
	p := CreateParams{Size: o.Size, Subformat: "dynamic"}
	if o.Backing != "" {
		return p, fmt.Errorf("vpc: %w: a VHD image is not created with a backing file", block.ErrNotSupported)
	}
	for _, k := range sortedKeys(o.Options) {
		v := o.Options[k]
		switch k {
		case "subformat":
			if v != "fixed" && v != "dynamic" {
				return p, fmt.Errorf("vpc: %w: subformat=%s (fixed or dynamic)", block.ErrInvalid, v)
			}
			p.Subformat = v
		case "force_size":
			b, err := parseBool(v)
			if err != nil {
				return p, fmt.Errorf("vpc: %w: force_size=%q: %v", block.ErrInvalid, v, err)
			}
			p.ForceSize = b
		default:
			return p, fmt.Errorf("vpc: %w: unknown creation option %q (vpc takes subformat and force_size)", block.ErrInvalid, k)
		}
	}
	if p.Size <= 0 || p.Size%sectorSize != 0 {
		return p, fmt.Errorf("vpc: %w: size %d must be a positive multiple of %d", block.ErrInvalid, p.Size, sectorSize)
	}
	if p.Size > maxVHDSize {
		return p, fmt.Errorf("vpc: %w: size %d is over the VHD limit of %d bytes", block.ErrInvalid, p.Size, int64(maxVHDSize))
	}
	return p, nil
}

// maxVHDSize is the largest VHD: 2040 GiB (as qemu; the 32-bit BAT and
// 512-byte sectors allow a little less than 2 TiB of addressable data).
const maxVHDSize = 2040 << 30

func parseBool(v string) (bool, error) {
	switch v {
	case "on", "true", "yes", "1", "":
		return true, nil
	case "off", "false", "no", "0":
		return false, nil
	}
	return false, fmt.Errorf("not a boolean (on/off)")
}

// geometry computes a CHS geometry for a number of sectors, following the
// VHD specification's algorithm (which rounds down).
func geometry(totalSectors int64) (cyls, heads, spt int64) {
	if totalSectors > maxCylinders*maxHeads*maxSPT {
		totalSectors = maxCylinders * maxHeads * maxSPT
	}
	var cth int64
	if totalSectors >= maxCylinders*16*63 {
		spt, heads = 255, 16
		cth = totalSectors / spt
	} else {
		spt = 17
		cth = totalSectors / spt
		heads = (cth + 1023) / 1024
		if heads < 4 {
			heads = 4
		}
		if cth >= heads*1024 || heads > 16 {
			spt, heads = 31, 16
			cth = totalSectors / spt
		}
		if cth >= heads*1024 {
			spt, heads = 63, 16
			cth = totalSectors / spt
		}
	}
	return cth / heads, heads, spt
}

// geometryAtLeast returns the smallest geometry (as QEMU searches for it)
// whose size is at least totalSectors, or the maximum geometry.
func geometryAtLeast(totalSectors int64) (cyls, heads, spt int64) {
	for i := int64(0); i < 1<<16; i++ {
		cyls, heads, spt = geometry(totalSectors + i)
		if cyls*heads*spt >= totalSectors || cyls == maxCylinders && heads == maxHeads && spt == maxSPT {
			return
		}
	}
	return geometry(totalSectors)
}

// fixedFooter builds the footer of a fixed image for p.
func fixedFooter(p CreateParams) *Footer {
	sectors := p.Size / sectorSize
	cyls, heads, spt := geometryAtLeast(sectors)
	f := &Footer{
		Features:       2,
		FormatVersion:  0x00010000,
		DataOffset:     noDataOffset,
		Timestamp:      uint32(time.Since(vhdEpoch) / time.Second),
		CreatorVersion: 0x00050003,
		Cylinders:      uint16(cyls),
		Heads:          uint8(heads),
		SectorsPerCyl:  uint8(spt),
		DiskType:       diskFixed,
	}
	copy(f.Cookie[:], footerCookie)
	copy(f.CreatorHostOS[:], "Wi2k")
	size := p.Size
	if p.ForceSize {
		copy(f.CreatorApp[:], "qem2")
	} else {
		copy(f.CreatorApp[:], "qemu")
		if chs := cyls * heads * spt * sectorSize; chs >= size {
			size = chs
		} else {
			// The size is beyond CHS: record it as is (the maximum geometry
			// tells readers to use the current size).
			copy(f.CreatorApp[:], "qem2")
		}
	}
	f.OriginalSize, f.CurrentSize = uint64(size), uint64(size)
	_, _ = rand.Read(f.UniqueID[:])
	return f
}

// dynamicBlockSize is the block size of new dynamic images (as qemu-img's
// and Virtual PC's).
const dynamicBlockSize = 2 << 20

// layout returns the bytes at offset 0 of a new image for p (nothing for
// a fixed image), the offset of its footer, and the footer.
func layout(p CreateParams) (head []byte, footerAt int64, footer []byte) {
	f := fixedFooter(p)
	if p.Subformat != "dynamic" {
		return nil, int64(f.CurrentSize), f.encode()
	}
	f.DiskType = diskDynamic
	f.DataOffset = footerSize
	entries := (int64(f.CurrentSize) + dynamicBlockSize - 1) / dynamicBlockSize
	batBytes := (entries*4 + sectorSize - 1) / sectorSize * sectorSize
	h := &DynamicHeader{DataOffset: noDataOffset, TableOffset: footerSize + dynHeaderSize, HeaderVersion: 0x00010000,
		MaxTableEntries: uint32(entries), BlockSize: dynamicBlockSize}
	copy(h.Cookie[:], dynCookie)
	head = make([]byte, footerSize+dynHeaderSize+batBytes)
	fb := f.encode()
	copy(head, fb)
	copy(head[footerSize:], h.encode())
	for i := footerSize + dynHeaderSize; i < len(head); i++ {
		head[i] = 0xff
	}
	return head, int64(len(head)), fb
}

// Create makes a new VHD image called name (the registry's Create). A fixed
// image is a sparse file of the virtual size followed by the footer; a
// dynamic one holds its headers, an empty BAT and the footer. Without
// force_size the size is rounded up to a CHS geometry, as qemu-img does.
func Create(name string, o image.CreateOptions) error {
	p, err := ParseCreateOptions(o)
	if err != nil {
		return err
	}
	head, footerAt, footer := layout(p)
	raw, ok := image.Lookup("raw")
	if !ok || raw.Create == nil {
		return fmt.Errorf("vpc: %w: the raw format is needed to create files", block.ErrNotSupported)
	}
	if err := raw.Create(name, image.CreateOptions{Size: footerAt + footerSize}); err != nil {
		return err
	}
	fh, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if _, err := fh.WriteAt(head, 0); err != nil {
		fh.Close()
		return err
	}
	if _, err := fh.WriteAt(footer, footerAt); err != nil {
		fh.Close()
		return err
	}
	if err := fh.Sync(); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}

// CreateOn writes a new VHD image of p onto node (which must be growable
// or already large enough).
func CreateOn(node block.Driver, o image.CreateOptions) error {
	p, err := ParseCreateOptions(o)
	if err != nil {
		return err
	}
	head, footerAt, footer := layout(p)
	if len(head) > 0 {
		if err := node.Pwrite(head, 0, 0); err != nil {
			return err
		}
	}
	if err := node.Pwrite(footer, footerAt, 0); err != nil {
		return err
	}
	return node.Flush()
}

package vhdx

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
)

// CreateParams are the parsed creation options (qemu-img's names).
type CreateParams struct {
	Size      int64  // rounded up to the 512-byte logical sector
	Subformat string // "dynamic" or "fixed"
	BlockSize int64  // 0: chosen from the size as qemu-img does
	LogSize   int64  // bytes, a multiple of 1 MiB, at least 1 MiB

	// parent, when set, makes a differencing image whose locator's
	// relative_path is parent (tests build differencing images with it;
	// Create refuses -b because thinblk does not write them).
	parent        string
	parentLinkage string // the parent's DataWriteGuid, "{...}"
	// logicalSector overrides the 512-byte logical sector (tests make
	// 4 KiB-sector images, as Hyper-V can, with it).
	logicalSector int64
}

// ParseCreateOptions reads subformat, block_size, log_size and
// block_state_zero (accepted and ignored: new blocks read as zeros
// anyway).
func ParseCreateOptions(o image.CreateOptions) (CreateParams, error) {
	p := CreateParams{Size: roundUp(o.Size, 512), Subformat: "dynamic", LogSize: mib}
	if o.Backing != "" {
		return p, fmt.Errorf("vhdx: %w: thinblk does not create differencing VHDX images", block.ErrNotSupported)
	}
	for _, k := range sortedKeys(o.Options) {
		v := o.Options[k]
		var err error
		switch k {
		case "subformat":
			if v != "dynamic" && v != "fixed" {
				err = fmt.Errorf("dynamic or fixed")
			}
			p.Subformat = v
		case "block_size":
			p.BlockSize, err = parseSize(v)
			if err == nil && p.BlockSize != 0 && (p.BlockSize < minBlockSize || p.BlockSize > maxBlockSize || p.BlockSize&(p.BlockSize-1) != 0) {
				err = fmt.Errorf("a power of two from 1 MiB to 256 MiB")
			}
		case "log_size":
			p.LogSize, err = parseSize(v)
			if err == nil && (p.LogSize < mib || p.LogSize%mib != 0 || p.LogSize > 1<<32-mib) {
				err = fmt.Errorf("a multiple of 1 MiB, at least 1 MiB")
			}
		case "block_state_zero":
			_, err = parseBool(v)
		default:
			return p, fmt.Errorf("vhdx: %w: unknown creation option %q (vhdx takes subformat, block_size, log_size, block_state_zero)", block.ErrInvalid, k)
		}
		if err != nil {
			return p, fmt.Errorf("vhdx: %w: %s=%q: %v", block.ErrInvalid, k, v, err)
		}
	}
	if p.Size <= 0 || p.Size > maxVirtualSize {
		return p, fmt.Errorf("vhdx: %w: size %d (1 byte to 64 TiB)", block.ErrInvalid, o.Size)
	}
	if p.BlockSize == 0 {
		switch {
		case p.Size >= 32<<40:
			p.BlockSize = 64 << 20
		case p.Size >= 1<<40:
			p.BlockSize = 32 << 20
		case p.Size > 1<<30:
			p.BlockSize = 16 << 20
		default:
			p.BlockSize = 8 << 20
		}
	}
	return p, nil
}

func parseSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSpace(s), "iB"), "B")
	shift := 0
	if t != "" {
		switch t[len(t)-1] {
		case 'k', 'K':
			shift = 10
		case 'm', 'M':
			shift = 20
		case 'g', 'G':
			shift = 30
		}
		if shift != 0 {
			t = t[:len(t)-1]
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v < 0 || v > 1<<40>>shift {
		return 0, fmt.Errorf("not a byte count")
	}
	return v << shift, nil
}

// write is one piece of a new image.
type write struct {
	off  int64
	data []byte
}

// layout computes the pieces of a new image and its file size.
func layout(p CreateParams) ([]write, int64) {
	meta := &Metadata{BlockSize: uint32(p.BlockSize), VirtualSize: uint64(p.Size), LogicalSectorSize: 512, PhysicalSectorSize: 4096}
	if p.logicalSector != 0 {
		meta.LogicalSectorSize = uint32(p.logicalSector)
	}
	meta.LeaveAllocated = p.Subformat == "fixed"
	meta.HasParent = p.parent != ""
	g := newGeometry(meta)
	logOff := int64(mib)
	metaOff := logOff + p.LogSize
	batOff := metaOff + mib
	batLen := roundUp(g.entries*8, mib)
	dataOff := batOff + batLen
	fileSize := dataOff

	var ws []write
	id := make([]byte, 64<<10)
	copy(id, fileSignature)
	copy(id[8:], encodeUTF16("thinblk"))
	ws = append(ws, write{0, id})

	h := &Header{LogVersion: 0, Version: 1, LogLength: uint32(p.LogSize), LogOffset: uint64(logOff)}
	_, _ = rand.Read(h.FileWriteGUID[:])
	_, _ = rand.Read(h.DataWriteGUID[:])
	for i, off := range []int64{header1Offset, header2Offset} {
		h.SequenceNumber = uint64(i + 1)
		ws = append(ws, write{off, h.encode()})
	}
	rt := encodeRegionTable([]region{
		{GUID: regionBAT, Offset: uint64(batOff), Length: uint32(batLen), Required: true},
		{GUID: regionMetadata, Offset: uint64(metaOff), Length: mib, Required: true},
	})
	ws = append(ws, write{region1Offset, rt}, write{region2Offset, rt})
	ws = append(ws, write{logOff, make([]byte, 4096)}) // an empty log

	// Metadata table and items.
	md := make([]byte, 2*metaTableSize)
	copy(md, metaSignature)
	type item struct {
		id    GUID
		data  []byte
		flags uint32
	}
	fp := make([]byte, 8)
	binary.LittleEndian.PutUint32(fp, meta.BlockSize)
	if meta.LeaveAllocated {
		binary.LittleEndian.PutUint32(fp[4:], flagLeaveBlocksAllocated)
	}
	if meta.HasParent {
		binary.LittleEndian.PutUint32(fp[4:], flagHasParent)
	}
	vs := make([]byte, 8)
	binary.LittleEndian.PutUint64(vs, meta.VirtualSize)
	diskID := make([]byte, 16)
	_, _ = rand.Read(diskID)
	ls, ps := make([]byte, 4), make([]byte, 4)
	binary.LittleEndian.PutUint32(ls, meta.LogicalSectorSize)
	binary.LittleEndian.PutUint32(ps, meta.PhysicalSectorSize)
	items := []item{{metaFileParameters, fp, 4}, {metaVirtualDiskSize, vs, 6}, {metaVirtualDiskID, diskID, 6}, {metaLogicalSector, ls, 6}, {metaPhysicalSector, ps, 6}}
	if meta.HasParent {
		items = append(items, item{metaParentLocator, encodeParentLocator(map[string]string{
			"parent_linkage": p.parentLinkage,
			"relative_path":  p.parent,
		}), 4})
	}
	binary.LittleEndian.PutUint16(md[10:], uint16(len(items)))
	at := metaTableSize
	for i, it := range items {
		e := md[32+32*i:]
		copy(e, it.id[:])
		binary.LittleEndian.PutUint32(e[16:], uint32(at))
		binary.LittleEndian.PutUint32(e[20:], uint32(len(it.data)))
		binary.LittleEndian.PutUint32(e[24:], it.flags)
		copy(md[at:], it.data)
		at += len(it.data)
	}
	ws = append(ws, write{metaOff, md})

	// BAT: a fixed image maps every block in order after the BAT.
	bat := make([]byte, g.entries*8)
	if meta.LeaveAllocated {
		for b := int64(0); b < g.dataBlocks; b++ {
			binary.LittleEndian.PutUint64(bat[g.payloadIndex(b)*8:], makeEntry(payloadFullyPresent, dataOff+b*g.blockSize))
		}
		fileSize = dataOff + g.dataBlocks*g.blockSize
	}
	ws = append(ws, write{batOff, bat})
	return ws, max(fileSize, batOff+batLen)
}

// Create makes a new VHDX image called name (the registry's Create). A
// fixed image's blocks are left as holes in the file (they read as zeros).
func Create(name string, o image.CreateOptions) error {
	p, err := ParseCreateOptions(o)
	if err != nil {
		return err
	}
	ws, fileSize := layout(p)
	raw, ok := image.Lookup("raw")
	if !ok || raw.Create == nil {
		return fmt.Errorf("vhdx: %w: the raw format is needed to create files", block.ErrNotSupported)
	}
	if err := raw.Create(name, image.CreateOptions{Size: fileSize}); err != nil {
		return err
	}
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	for _, w := range ws {
		if _, err := f.WriteAt(w.data, w.off); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// CreateOn writes a new, empty VHDX image onto node (growable or large
// enough).
func CreateOn(node block.Driver, o image.CreateOptions) error {
	p, err := ParseCreateOptions(o)
	if err != nil {
		return err
	}
	ws, fileSize := layout(p)
	for _, w := range ws {
		if err := node.Pwrite(w.data, w.off, 0); err != nil {
			return err
		}
	}
	if node.Size() < fileSize {
		if err := node.Pwrite(make([]byte, 512), fileSize-512, 0); err != nil {
			return err
		}
	}
	return node.Flush()
}

// encodeParentLocator builds a parent locator item (keys sorted).
func encodeParentLocator(kv map[string]string) []byte {
	keys := sortedKeys(kv)
	b := make([]byte, 20+12*len(keys))
	copy(b, parentLocatorTypeVHDX[:])
	binary.LittleEndian.PutUint16(b[18:], uint16(len(keys)))
	for i, k := range keys {
		kb, vb := encodeUTF16(k), encodeUTF16(kv[k])
		e := b[20+12*i:]
		binary.LittleEndian.PutUint32(e, uint32(len(b)))
		binary.LittleEndian.PutUint16(e[8:], uint16(len(kb)))
		b = append(b, kb...)
		e = b[20+12*i:]
		binary.LittleEndian.PutUint32(e[4:], uint32(len(b)))
		binary.LittleEndian.PutUint16(e[10:], uint16(len(vb)))
		b = append(b, vb...)
	}
	return b
}

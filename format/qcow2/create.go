package qcow2

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
)

// CreateParams are the parsed creation options (qemu-img create -o).
type CreateParams struct {
	Size            int64
	ClusterSize     int64  // cluster_size, default 64 KiB
	Version         uint32 // compat: 2 (0.10) or 3 (1.1, default)
	RefcountBits    int    // refcount_bits, default 16
	LazyRefcounts   bool   // lazy_refcounts
	Preallocation   string // off, metadata, falloc, full
	ExtendedL2      bool   // extended_l2
	CompressionType uint8  // compression_type: zlib (0) or zstd (1)
	BackingFile     string // backing_file / -b
	BackingFormat   string // backing_fmt / -F
}

// ParseCreateOptions turns CreateOptions into CreateParams, rejecting
// unknown keys and impossible combinations. It opens the backing file (when
// o.Size is 0 or its format is not given) through o.OpenBacking.
func ParseCreateOptions(o image.CreateOptions) (CreateParams, error) {
	p := CreateParams{Size: o.Size, ClusterSize: 64 << 10, Version: 3, RefcountBits: 16, Preallocation: "off",
		BackingFile: o.Backing, BackingFormat: o.BackingFormat}
	keys := make([]string, 0, len(o.Options))
	for k := range o.Options {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	bad := func(k, v, why string) error {
		return fmt.Errorf("%w: qcow2: option %s=%q: %s", block.ErrInvalid, k, v, why)
	}
	for _, k := range keys {
		v := o.Options[k]
		switch k {
		case "size":
			n, err := parseSize(v)
			if err != nil {
				return p, bad(k, v, err.Error())
			}
			p.Size = n
		case "cluster_size":
			n, err := parseSize(v)
			if err != nil || n < 512 || n > 2<<20 || n&(n-1) != 0 {
				return p, bad(k, v, "want a power of two from 512 to 2M")
			}
			p.ClusterSize = n
		case "compat":
			switch v {
			case "0.10", "v2":
				p.Version = 2
			case "1.1", "v3":
				p.Version = 3
			default:
				return p, bad(k, v, "want 0.10 or 1.1")
			}
		case "refcount_bits":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 64 || n&(n-1) != 0 {
				return p, bad(k, v, "want a power of two from 1 to 64")
			}
			p.RefcountBits = n
		case "lazy_refcounts", "extended_l2":
			b, err := parseBool(v)
			if err != nil {
				return p, bad(k, v, "want on or off")
			}
			if k == "lazy_refcounts" {
				p.LazyRefcounts = b
			} else {
				p.ExtendedL2 = b
			}
		case "preallocation":
			switch v {
			case "off", "metadata", "falloc", "full":
				p.Preallocation = v
			default:
				return p, bad(k, v, "want off, metadata, falloc or full")
			}
		case "compression_type":
			switch v {
			case "zlib":
				p.CompressionType = CompressionDeflate
			case "zstd":
				p.CompressionType = CompressionZstd
			default:
				return p, bad(k, v, "want zlib or zstd")
			}
		case "backing_file":
			p.BackingFile = v
		case "backing_fmt":
			p.BackingFormat = v
		default:
			return p, fmt.Errorf("%w: qcow2: unknown creation option %q", block.ErrInvalid, k)
		}
	}
	if p.Version == 2 {
		switch {
		case p.RefcountBits != 16:
			return p, fmt.Errorf("%w: qcow2: compat=0.10 needs refcount_bits=16", block.ErrInvalid)
		case p.LazyRefcounts:
			return p, fmt.Errorf("%w: qcow2: lazy refcounts need compat=1.1", block.ErrInvalid)
		case p.ExtendedL2:
			return p, fmt.Errorf("%w: qcow2: extended L2 entries need compat=1.1", block.ErrInvalid)
		case p.CompressionType != 0:
			return p, fmt.Errorf("%w: qcow2: compression_type=zstd needs compat=1.1", block.ErrInvalid)
		}
	}
	if p.ExtendedL2 && p.ClusterSize < 16<<10 {
		return p, fmt.Errorf("%w: qcow2: extended L2 entries need cluster_size >= 16k", block.ErrInvalid)
	}
	if p.BackingFile != "" && (p.Size == 0 || p.BackingFormat == "") {
		if o.OpenBacking == nil {
			return p, fmt.Errorf("%w: qcow2: cannot open backing file %q", block.ErrInvalid, p.BackingFile)
		}
		b, err := o.OpenBacking(p.BackingFile, p.BackingFormat)
		if err != nil {
			return p, fmt.Errorf("qcow2: backing file %q: %w", p.BackingFile, err)
		}
		if p.Size == 0 {
			p.Size = b.Size()
		}
		if p.BackingFormat == "" {
			if info, err := b.Info(); err == nil {
				p.BackingFormat = info.Format
			}
		}
		b.Close()
	}
	if p.Size < 0 {
		return p, fmt.Errorf("%w: qcow2: negative size", block.ErrInvalid)
	}
	p.Size = (p.Size + 511) &^ 511
	return p, nil
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "on", "true", "yes", "1":
		return true, nil
	case "off", "false", "no", "0":
		return false, nil
	}
	return false, fmt.Errorf("not a boolean")
}

func parseSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSpace(s), "B")
	shift := 0
	if t != "" {
		switch t[len(t)-1] {
		case 'k', 'K':
			shift = 10
		case 'm', 'M':
			shift = 20
		case 'g', 'G':
			shift = 30
		case 't', 'T':
			shift = 40
		}
		if shift > 0 {
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)>>shift {
		return 0, fmt.Errorf("not a size")
	}
	return n << shift, nil
}

// layout is a planned new image: the writes that make it and the file
// size.
type layout struct {
	writes   []plannedWrite
	fileSize int64
	// dataStart and dataEnd bound the preallocated data clusters (equal
	// when none).
	dataStart, dataEnd int64
}

type plannedWrite struct {
	off  int64
	data []byte
}

// plan lays out a new image: header, refcount table, refcount blocks, L1
// table, and with preallocation the L2 tables and data clusters.
func plan(p CreateParams) (*layout, error) {
	cs := p.ClusterSize
	clusterBits := uint32(bits.TrailingZeros64(uint64(cs)))
	h := &Header{
		Version:         p.Version,
		ClusterBits:     clusterBits,
		Size:            uint64(p.Size),
		RefcountOrder:   uint32(bits.TrailingZeros(uint(p.RefcountBits))),
		CompressionType: p.CompressionType,
		BackingFile:     p.BackingFile,
		BackingFormat:   p.BackingFormat,
	}
	if p.Version >= 3 {
		h.HeaderLength = v3HeaderLength + 8
		h.FeatureNames = defaultFeatureNames()
		if p.LazyRefcounts {
			h.CompatibleFeatures |= CompatLazyRefcounts
		}
		if p.ExtendedL2 {
			h.IncompatibleFeatures |= IncompatExtendedL2
		}
		if p.CompressionType != 0 {
			h.IncompatibleFeatures |= IncompatCompression
		}
	}
	l2Entries := h.l2Entries()
	guestClusters := (p.Size + cs - 1) / cs
	l1Size := (guestClusters + l2Entries - 1) / l2Entries
	if l1Size*8 > maxL1Bytes {
		return nil, fmt.Errorf("%w: qcow2: virtual size %d too large for cluster size %d", block.ErrInvalid, p.Size, cs)
	}
	h.L1Size = uint32(l1Size)
	l1Clusters := max(1, (l1Size*8+cs-1)/cs)
	var l2Tables, dataClusters int64
	if p.Preallocation != "off" {
		l2Tables, dataClusters = l1Size, guestClusters
	}
	rbEntries := cs * 8 / int64(p.RefcountBits)
	// header + refcount table + refcount blocks + L1 + L2 + data.
	var tc, nb int64 = 1, 1
	for {
		total := 1 + tc + nb + l1Clusters + l2Tables + dataClusters
		nb2 := (total + rbEntries - 1) / rbEntries
		tc2 := max(1, (nb2*8+cs-1)/cs)
		if nb2 == nb && tc2 == tc {
			break
		}
		nb, tc = nb2, tc2
	}
	if tc*cs > maxRefcountTable {
		return nil, fmt.Errorf("%w: qcow2: image too large for cluster size %d and refcount_bits %d", block.ErrInvalid, cs, p.RefcountBits)
	}
	rtStart := int64(1)
	rbStart := rtStart + tc
	l1Start := rbStart + nb
	l2Start := l1Start + l1Clusters
	dataStart := l2Start + l2Tables
	total := dataStart + dataClusters
	h.RefcountTableOffset = uint64(rtStart * cs)
	h.RefcountTableClusters = uint32(tc)
	h.L1TableOffset = uint64(l1Start * cs)
	hb, err := h.encode()
	if err != nil {
		return nil, err
	}
	lay := &layout{dataStart: dataStart * cs, dataEnd: total * cs}
	lay.writes = append(lay.writes, plannedWrite{0, hb})
	rt := make([]uint64, tc*cs/8)
	for i := range nb {
		rt[i] = uint64((rbStart + i) * cs)
	}
	lay.writes = append(lay.writes, plannedWrite{rtStart * cs, encodeTable(rt)})
	for i := range nb {
		blk := make([]byte, cs)
		for j := int64(0); j < rbEntries; j++ {
			if i*rbEntries+j >= total {
				break
			}
			setRefcountAt(blk, j, h.RefcountOrder, 1)
		}
		lay.writes = append(lay.writes, plannedWrite{(rbStart + i) * cs, blk})
	}
	l1 := make([]uint64, l1Size)
	for i := range l2Tables {
		l1[i] = uint64((l2Start+i)*cs) | entryCopied
	}
	l1b := encodeTable(l1)
	if len(l1b) == 0 {
		l1b = make([]byte, 8)
	}
	lay.writes = append(lay.writes, plannedWrite{l1Start * cs, l1b})
	lay.fileSize = l1Start*cs + int64(len(l1b))
	es := h.l2EntrySize()
	for i := range l2Tables {
		tbl := make([]byte, cs)
		for j := int64(0); j < l2Entries; j++ {
			g := i*l2Entries + j
			if g >= guestClusters {
				break
			}
			binary.BigEndian.PutUint64(tbl[j*es:], uint64((dataStart+g)*cs)|entryCopied)
		}
		lay.writes = append(lay.writes, plannedWrite{(l2Start + i) * cs, tbl})
		lay.fileSize = (l2Start + i + 1) * cs
	}
	if dataClusters > 0 {
		lay.fileSize = total * cs
	}
	return lay, nil
}

// Create makes a new qcow2 image file called name (the registry's Create).
// The file is created through the raw format (which owns files and their
// preallocation), then the metadata is written into it.
func Create(name string, o image.CreateOptions) error {
	p, err := ParseCreateOptions(o)
	if err != nil {
		return err
	}
	lay, err := plan(p)
	if err != nil {
		return err
	}
	raw, ok := image.Lookup("raw")
	if !ok || raw.Create == nil {
		return fmt.Errorf("%w: qcow2: the raw format is needed to create files", block.ErrNotSupported)
	}
	// Preallocate the data area together with the rest of the file.
	fileMode := "off"
	if p.Preallocation == "falloc" || p.Preallocation == "full" {
		fileMode = p.Preallocation
	}
	if err := raw.Create(name, image.CreateOptions{Size: lay.fileSize, Options: map[string]string{"preallocation": fileMode}}); err != nil {
		return err
	}
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	for _, w := range lay.writes {
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

// CreateOn writes a new, empty qcow2 image onto node, which must be
// growable. Preallocation "falloc" and "full" write zeros into the data
// clusters (the node has no other way to reserve them).
func CreateOn(node block.Driver, o image.CreateOptions) error {
	p, err := ParseCreateOptions(o)
	if err != nil {
		return err
	}
	lay, err := plan(p)
	if err != nil {
		return err
	}
	for _, w := range lay.writes {
		if err := node.Pwrite(w.data, w.off, 0); err != nil {
			return err
		}
	}
	if p.Preallocation == "falloc" || p.Preallocation == "full" {
		for off := lay.dataStart; off < lay.dataEnd; {
			c := min(lay.dataEnd-off, 1<<20)
			if err := node.Pwrite(block.ZeroBuffer(int(c)), off, 0); err != nil {
				return err
			}
			off += c
		}
	} else if lay.fileSize > node.Size() {
		// Metadata preallocation: the data clusters must exist in the file.
		if err := node.Pwrite([]byte{0}, lay.fileSize-1, 0); err != nil {
			return err
		}
	}
	return node.Flush()
}

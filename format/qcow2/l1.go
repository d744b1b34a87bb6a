package qcow2

import (
	"encoding/binary"
	"fmt"

	"github.com/thinblk/thinblk/block"
)

// The L1 table is kept in memory (img.l1) and written whole at flush when
// it changed. Its entries point at L2 tables; bit 63 (entryCopied) says the
// L2 table's refcount is exactly one, so it may be changed in place.

// lookupLocked returns the mappings of up to n guest clusters from vc, all
// described by the same L2 table (so fewer may be returned).
//
// Preconditions: img.mu held.
func (img *Image) lookupLocked(vc int64, n int64) ([]mapping, error) {
	l1Index := vc / img.l2Entries
	first := vc % img.l2Entries
	n = min(n, img.l2Entries-first)
	out := make([]mapping, n)
	if l1Index >= int64(len(img.l1)) {
		return out, nil
	}
	l2Off := int64(img.l1[l1Index] & entryOffsetMask)
	if l2Off == 0 {
		return out, nil
	}
	tbl, err := img.l2Cache.get(l2Off)
	if err != nil {
		return nil, err
	}
	for i := range n {
		m, err := img.entryLocked(tbl, first+i, vc+i)
		if err != nil {
			return nil, err
		}
		out[i] = m
	}
	return out, nil
}

// entryLocked decodes entry index of the L2 table tbl (which describes
// guest cluster vc) and checks it against the file and the metadata.
//
// Preconditions: img.mu held; tbl came from img.l2Cache under this hold.
func (img *Image) entryLocked(tbl []byte, index, vc int64) (mapping, error) {
	p := index * img.l2EntrySize
	raw := binary.BigEndian.Uint64(tbl[p:])
	var bitmap uint64
	if img.format.extended {
		bitmap = binary.BigEndian.Uint64(tbl[p+8:])
	}
	m, err := img.format.decode(raw, bitmap)
	if err != nil {
		return m, fmt.Errorf("guest cluster %d: %w", vc, err)
	}
	if m.host != 0 && m.host >= img.file.Size() && m.alloc != 0 {
		return m, corruptf("guest cluster %d maps to 0x%x past end of file", vc, m.host)
	}
	if m.host != 0 && img.overlapsMetadataLocked(m.host) {
		return m, corruptf("guest cluster %d maps to 0x%x, which holds image metadata", vc, m.host)
	}
	return m, nil
}

// l2ForWriteLocked returns the offset of the L2 table for l1Index, ready to
// be changed: allocated if missing, copied if shared with a snapshot.
//
// Preconditions: img.mu held.
func (img *Image) l2ForWriteLocked(l1Index int64) (int64, error) {
	if l1Index >= int64(len(img.l1)) {
		return 0, fmt.Errorf("%w: qcow2: L1 index %d beyond l1_size %d", block.ErrOutOfRange, l1Index, len(img.l1))
	}
	e := img.l1[l1Index]
	old := int64(e & entryOffsetMask)
	if old != 0 && e&entryCopied != 0 {
		return old, nil
	}
	off, err := img.allocClustersLocked(1)
	if err != nil {
		return 0, err
	}
	img.reserve(off, img.clusterSize)
	if old == 0 {
		if _, err := img.l2Cache.create(off); err != nil {
			return 0, err
		}
	} else {
		// Shared with a snapshot: copy it. The data clusters it points at
		// keep their refcounts (they count every L1 path to them).
		src, err := img.l2Cache.get(old)
		if err != nil {
			return 0, err
		}
		tmp := append([]byte(nil), src...)
		dst, err := img.l2Cache.create(off)
		if err != nil {
			return 0, err
		}
		copy(dst, tmp)
		img.freeClustersLater(old, 1)
	}
	img.l1[l1Index] = uint64(off) | entryCopied
	img.l1Dirty = true
	return off, nil
}

// setMappingLocked stores m as the L2 entry of guest cluster vc.
//
// Preconditions: img.mu held; m is not compressed.
func (img *Image) setMappingLocked(vc int64, m mapping) error {
	raw, bitmap := img.format.encode(m)
	return img.setRawLocked(vc, raw, bitmap)
}

// setRawLocked stores a raw L2 entry (and bitmap) for guest cluster vc.
//
// Preconditions: img.mu held.
func (img *Image) setRawLocked(vc int64, raw, bitmap uint64) error {
	off, err := img.l2ForWriteLocked(vc / img.l2Entries)
	if err != nil {
		return err
	}
	tbl, err := img.l2Cache.get(off)
	if err != nil {
		return err
	}
	p := (vc % img.l2Entries) * img.l2EntrySize
	binary.BigEndian.PutUint64(tbl[p:], raw)
	if img.format.extended {
		binary.BigEndian.PutUint64(tbl[p+8:], bitmap)
	}
	img.l2Cache.markDirty(off)
	return nil
}

// overlapsMetadataLocked reports whether the host cluster at off is the
// header, or part of the L1 or refcount table (a corrupt L2 entry must not
// make a guest write overwrite them).
//
// Preconditions: img.mu held.
func (img *Image) overlapsMetadataLocked(off int64) bool {
	h := img.hdr
	cs := img.clusterSize
	in := func(start, n int64) bool { return n > 0 && off+cs > start && off < start+n }
	return off < cs ||
		in(int64(h.L1TableOffset), int64(len(img.l1))*8) ||
		in(int64(h.RefcountTableOffset), int64(h.RefcountTableClusters)*cs)
}

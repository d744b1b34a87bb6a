package qcow2

import (
	"encoding/binary"
	"fmt"

	"github.com/thinblk/thinblk/block"
)

// RepairMode selects what Check repairs.
type RepairMode int

const (
	RepairNone  RepairMode = iota
	RepairLeaks            // drop refcounts of clusters nothing references
	RepairAll              // also rebuild refcounts that are too low and fix copied flags
)

// CheckResult is the outcome of Check, with qemu-img check's JSON fields.
type CheckResult struct {
	Filename           string `json:"filename"`
	Format             string `json:"format"`
	CheckErrors        int    `json:"check-errors"`
	Corruptions        int    `json:"corruptions,omitempty"`
	Leaks              int    `json:"leaks,omitempty"`
	CorruptionsFixed   int    `json:"corruptions-fixed,omitempty"`
	LeaksFixed         int    `json:"leaks-fixed,omitempty"`
	ImageEndOffset     int64  `json:"image-end-offset,omitempty"`
	TotalClusters      int64  `json:"total-clusters,omitempty"`
	AllocatedClusters  int64  `json:"allocated-clusters,omitempty"`
	FragmentedClusters int64  `json:"fragmented-clusters,omitempty"`
	CompressedClusters int64  `json:"compressed-clusters,omitempty"`
	// Messages are qemu-img check's per-problem lines ("Leaked cluster 7
	// refcount=1 reference=0", "ERROR ...").
	Messages []string `json:"-"`
}

// maxCheckClusters bounds the reference array of a check (a hostile image
// must not make it allocate without bound): 2^28 clusters.
const maxCheckClusters = 1 << 28

// checker holds the computed references of one check.
type checker struct {
	img  *Image
	refs []uint32 // computed reference count per host cluster
	res  *CheckResult
	// copiedFixes are L1/L2 entries whose copied flag disagrees with the
	// refcount: recorded as (table offset or -1 for the L1, index).
	l1Fix []int64
	l2Fix []l2FixEntry
}

type l2FixEntry struct {
	table int64
	index int64
}

func (c *checker) errorf(format string, args ...any) {
	c.res.Corruptions++
	c.res.Messages = append(c.res.Messages, "ERROR "+fmt.Sprintf(format, args...))
}

// ref counts one reference to the host clusters of [off, off+n).
func (c *checker) ref(off, n int64, what string) { c.refN(off, n, 1, what) }

// refN counts count references to the host clusters of [off, off+n).
func (c *checker) refN(off, n int64, count uint32, what string) {
	if n <= 0 || count == 0 {
		return
	}
	cb := c.img.clusterBits
	fileEnd := c.img.file.Size()
	if off < 0 || off+n > (fileEnd+c.img.clusterSize-1)/c.img.clusterSize*c.img.clusterSize {
		c.errorf("%s at 0x%x is past the end of the image file (%d bytes)", what, off, fileEnd)
		return
	}
	for idx := off >> cb; idx <= (off+n-1)>>cb; idx++ {
		if idx >= int64(len(c.refs)) {
			c.errorf("%s at 0x%x is beyond what can be checked", what, off)
			return
		}
		c.refs[idx] += count
	}
}

// Check verifies the refcounts against the references found by walking
// the header, the L1/L2 tables of the active image and of every snapshot,
// the refcount structures and the snapshot table, and repairs what mode
// allows. The image is flushed first.
func (img *Image) Check(mode RepairMode) (*CheckResult, error) {
	if mode != RepairNone && img.readOnly {
		return nil, fmt.Errorf("qcow2: check -r: %w", block.ErrReadOnly)
	}
	img.mu.Lock()
	defer img.mu.Unlock()
	if !img.readOnly && !img.dirtyPending.Load() {
		if err := img.flushLocked(); err != nil {
			return nil, err
		}
	}
	res, err := img.checkLocked(mode)
	if err == nil && mode == RepairAll && img.hdr.IncompatibleFeatures&IncompatDirty != 0 &&
		res.Corruptions == res.CorruptionsFixed {
		// The refcounts are exact now: the dirty bit goes.
		img.hdr.IncompatibleFeatures &^= IncompatDirty
		if err = img.writeHeaderLocked(); err == nil {
			img.dirtyPending.Store(false)
		}
	}
	return res, err
}

// repair is Check for the open path (the image is not shared yet).
func (img *Image) repair(mode RepairMode) (*CheckResult, error) {
	img.mu.Lock()
	defer img.mu.Unlock()
	return img.checkLocked(mode)
}

func (img *Image) checkLocked(mode RepairMode) (*CheckResult, error) {
	res := &CheckResult{Filename: img.name, Format: "qcow2"}
	fileClusters := (img.file.Size() + img.clusterSize - 1) >> img.clusterBits
	n := max(fileClusters, img.highWater)
	if n > maxCheckClusters {
		return nil, fmt.Errorf("%w: qcow2: image too large to check (%d clusters)", block.ErrNotSupported, n)
	}
	c := &checker{img: img, refs: make([]uint32, n), res: res}
	if err := c.walk(); err != nil {
		res.CheckErrors++
		return res, err
	}
	// Compare with the stored refcounts.
	end := max(int64(len(c.refs)), int64(len(img.rt))*img.rbEntries)
	var leaks, low []int64
	scanned := map[uint64]bool{}
	for idx := int64(0); idx < end; idx++ {
		bi := idx / img.rbEntries
		if idx >= int64(len(c.refs)) && idx%img.rbEntries == 0 {
			// Past every referenced cluster: only non-zero entries of
			// blocks not seen before can be leaks.
			skip := bi >= int64(len(img.rt)) || img.rt[bi] == 0 || scanned[img.rt[bi]]
			if !skip {
				scanned[img.rt[bi]] = true
				blk, err := img.rbCache.get(int64(img.rt[bi]))
				if err != nil {
					res.CheckErrors++
					return res, err
				}
				skip = block.IsZero(blk)
			}
			if skip {
				idx = (bi+1)*img.rbEntries - 1
				continue
			}
		}
		stored, err := img.refcountLocked(idx)
		if err != nil {
			res.CheckErrors++
			return res, err
		}
		var computed uint64
		if idx < int64(len(c.refs)) {
			computed = uint64(c.refs[idx])
		}
		switch {
		case stored > computed:
			res.Leaks++
			leaks = append(leaks, idx)
			res.Messages = append(res.Messages, fmt.Sprintf("Leaked cluster %d refcount=%d reference=%d", idx, stored, computed))
		case stored < computed:
			res.Corruptions++
			low = append(low, idx)
			res.Messages = append(res.Messages, fmt.Sprintf("ERROR cluster %d refcount=%d reference=%d", idx, stored, computed))
		}
		if stored > 0 || computed > 0 {
			res.ImageEndOffset = (idx + 1) << img.clusterBits
		}
	}
	// Copied flags, judged against the computed references.
	c.checkCopied()
	if mode == RepairNone {
		return res, nil
	}
	if mode == RepairAll && (len(low) > 0 || len(c.l1Fix) > 0 || len(c.l2Fix) > 0) {
		if err := c.fixCopied(); err != nil {
			res.CheckErrors++
			return res, err
		}
		if len(low) > 0 {
			if err := c.rebuildRefcounts(); err != nil {
				res.CheckErrors++
				return res, err
			}
			res.LeaksFixed = res.Leaks
			res.CorruptionsFixed = res.Corruptions
			return res, nil
		}
		res.CorruptionsFixed = res.Corruptions
	}
	for _, idx := range leaks {
		var computed uint64
		if idx < int64(len(c.refs)) {
			computed = uint64(c.refs[idx])
		}
		if err := img.setRefcountLocked(idx, computed, 0, 0); err != nil {
			res.CheckErrors++
			return res, err
		}
		res.LeaksFixed++
	}
	if err := img.rbCache.flush(); err != nil {
		return res, err
	}
	return res, img.file.Flush()
}

// walk counts every reference.
//
// Every L1 table (the active one and each snapshot's) is read first, and
// each distinct L2 table is then decoded once, its references counted as
// many times as L1 entries point at it: the work stays proportional to the
// image file, however often a hostile image repeats a table.
func (c *checker) walk() error {
	img := c.img
	h := img.hdr
	c.ref(0, img.clusterSize, "header")
	l2Uses := map[int64]uint32{} // L2 table offset -> L1 entries pointing at it
	var order []int64            // distinct L2 tables, in first-seen order
	activeFirst := map[int64]int64{}
	addL1 := func(off, size int64, active bool) error {
		c.ref(off, size*8, "L1 table")
		l1 := img.l1
		if !active {
			var err error
			if l1, err = img.readTable(off, size); err != nil {
				return err
			}
		}
		for i, e := range l1 {
			l2Off := int64(e & entryOffsetMask)
			if l2Off == 0 {
				continue
			}
			if l2Off%img.clusterSize != 0 || l2Off >= img.file.Size() {
				c.errorf("L2 table %d at 0x%x is invalid or past end of file", i, l2Off)
				continue
			}
			c.ref(l2Off, img.clusterSize, "L2 table")
			if l2Uses[l2Off] == 0 {
				order = append(order, l2Off)
			}
			l2Uses[l2Off]++
			if _, ok := activeFirst[l2Off]; active && !ok {
				activeFirst[l2Off] = int64(i)
			}
		}
		return nil
	}
	if err := addL1(int64(h.L1TableOffset), int64(h.L1Size), true); err != nil {
		return err
	}
	for _, s := range img.snapshots {
		if err := addL1(int64(s.L1TableOffset), int64(s.L1Size), false); err != nil {
			return err
		}
	}
	tbl := make([]byte, img.clusterSize)
	for _, l2Off := range order {
		if err := c.readL2(l2Off, tbl); err != nil {
			return err
		}
		first, active := activeFirst[l2Off]
		c.walkL2(tbl, l2Off, l2Uses[l2Off], first, active)
	}
	c.res.TotalClusters = (img.size.Load() + img.clusterSize - 1) >> img.clusterBits
	if h.NbSnapshots > 0 {
		c.ref(int64(h.SnapshotsOffset), img.snapshotTableSize, "snapshot table")
	}
	if err := c.walkBitmaps(); err != nil {
		return err
	}
	c.ref(int64(h.RefcountTableOffset), int64(h.RefcountTableClusters)<<img.clusterBits, "refcount table")
	for i, e := range img.rt {
		if e != 0 {
			c.ref(int64(e), img.clusterSize, fmt.Sprintf("refcount block %d", i))
		}
	}
	return nil
}

// readL2 reads an L2 table, from the cache when it is there (it may be
// newer than the file).
func (c *checker) readL2(off int64, tbl []byte) error {
	if cached, ok := c.img.l2Cache.byOffset[off]; ok {
		copy(tbl, cached.Value.(*cachedTable).data)
		return nil
	}
	return c.img.file.Pread(tbl, off)
}

// walkL2 counts the clusters an L2 table points at, uses times. For a
// table of the active L1 (first is its first L1 index) it also gathers
// allocation statistics. As in qemu-img check, a data cluster is
// fragmented when it does not follow the previous one of the same table:
// the first cluster of each table never is.
func (c *checker) walkL2(tbl []byte, l2Off int64, uses uint32, first int64, active bool) {
	img := c.img
	prevHost := int64(-1)
	for j := int64(0); j < img.l2Entries; j++ {
		p := j * img.l2EntrySize
		raw := binary.BigEndian.Uint64(tbl[p:])
		var bitmap uint64
		if img.format.extended {
			bitmap = binary.BigEndian.Uint64(tbl[p+8:])
		}
		if raw == 0 && bitmap == 0 {
			continue
		}
		m, err := img.format.decode(raw, bitmap)
		if err != nil {
			c.errorf("L2 entry %d of table 0x%x: %v", j, l2Off, err)
			continue
		}
		inDisk := active && (first*img.l2Entries+j)<<img.clusterBits < img.size.Load()
		switch {
		case m.compressed:
			start := m.compOff &^ 511
			c.refN(start, m.compOff+m.compLen-start, uses, "compressed cluster")
			if inDisk {
				// As qemu-img counts them: compressed clusters are
				// fragmented by nature (they share sectors).
				c.res.AllocatedClusters++
				c.res.CompressedClusters++
				c.res.FragmentedClusters++
			}
		case m.host != 0:
			c.refN(m.host, img.clusterSize, uses, "data cluster")
			if inDisk {
				c.res.AllocatedClusters++
				if prevHost >= 0 && m.host != prevHost+img.clusterSize {
					c.res.FragmentedClusters++
				}
				prevHost = m.host
			}
		}
	}
}

// walkBitmaps counts the clusters of persistent dirty bitmaps.
func (c *checker) walkBitmaps() error {
	img := c.img
	for _, e := range img.hdr.Extensions {
		if e.Type != extBitmaps || len(e.Data) < 24 {
			continue
		}
		be := binary.BigEndian
		nb := be.Uint32(e.Data[0:])
		dirSize := int64(be.Uint64(e.Data[8:]))
		dirOff := int64(be.Uint64(e.Data[16:]))
		if dirSize < 0 || dirSize > 64<<20 || dirOff < 0 || dirOff+dirSize > img.file.Size() {
			c.errorf("bitmap directory (0x%x, %d bytes) is invalid", dirOff, dirSize)
			return nil
		}
		c.ref(dirOff, dirSize, "bitmap directory")
		dir := make([]byte, dirSize)
		if err := img.file.Pread(dir, dirOff); err != nil {
			return err
		}
		pos := int64(0)
		for i := uint32(0); i < nb && pos+24 <= dirSize; i++ {
			tOff := int64(be.Uint64(dir[pos:]))
			tSize := int64(be.Uint32(dir[pos+8:]))
			nameSize := int64(be.Uint16(dir[pos+18:]))
			extra := int64(be.Uint32(dir[pos+20:]))
			if tOff > 0 && tSize > 0 && tSize*8 <= 64<<20 && tOff+tSize*8 <= img.file.Size() {
				c.ref(tOff, tSize*8, "bitmap table")
				t, err := img.readTable(tOff, tSize)
				if err != nil {
					return err
				}
				for _, te := range t {
					if o := int64(te & entryOffsetMask); o != 0 {
						c.ref(o, img.clusterSize, "bitmap data")
					}
				}
			}
			pos += (24 + extra + nameSize + 7) &^ 7
		}
	}
	return nil
}

// checkCopied records active L1/L2 entries whose copied flag disagrees
// with the computed reference count.
func (c *checker) checkCopied() {
	img := c.img
	tbl := make([]byte, img.clusterSize)
	refOf := func(off int64) uint32 {
		idx := off >> img.clusterBits
		if idx < int64(len(c.refs)) {
			return c.refs[idx]
		}
		return 0
	}
	seen := map[int64]bool{}
	for i, e := range img.l1 {
		l2Off := int64(e & entryOffsetMask)
		if l2Off == 0 || l2Off%img.clusterSize != 0 || l2Off >= img.file.Size() {
			continue
		}
		if (e&entryCopied != 0) != (refOf(l2Off) == 1) {
			c.errorf("OFLAG_COPIED L2 cluster: l1_index=%d l1_entry=%x refcount=%d", i, e, refOf(l2Off))
			c.l1Fix = append(c.l1Fix, int64(i))
		}
		if seen[l2Off] {
			continue
		}
		seen[l2Off] = true
		if err := c.readL2(l2Off, tbl); err != nil {
			continue
		}
		for j := int64(0); j < img.l2Entries; j++ {
			raw := binary.BigEndian.Uint64(tbl[j*img.l2EntrySize:])
			if raw&entryCompressed != 0 {
				continue
			}
			host := int64(raw & entryOffsetMask)
			if host == 0 || host%img.clusterSize != 0 {
				continue
			}
			if (raw&entryCopied != 0) != (refOf(host) == 1) {
				c.errorf("OFLAG_COPIED data cluster: l2_entry=%x refcount=%d", raw, refOf(host))
				c.l2Fix = append(c.l2Fix, l2FixEntry{l2Off, j})
			}
		}
	}
}

// fixCopied sets the copied flags to match the computed references and
// writes the tables.
func (c *checker) fixCopied() error {
	img := c.img
	refOf := func(off int64) uint32 {
		idx := off >> img.clusterBits
		if idx < int64(len(c.refs)) {
			return c.refs[idx]
		}
		return 0
	}
	for _, i := range c.l1Fix {
		e := img.l1[i]
		if refOf(int64(e&entryOffsetMask)) == 1 {
			img.l1[i] = e | entryCopied
		} else {
			img.l1[i] = e &^ entryCopied
		}
		img.l1Dirty = true
	}
	for _, f := range c.l2Fix {
		tbl, err := img.l2Cache.get(f.table)
		if err != nil {
			return err
		}
		p := f.index * img.l2EntrySize
		raw := binary.BigEndian.Uint64(tbl[p:])
		if refOf(int64(raw&entryOffsetMask)) == 1 {
			raw |= entryCopied
		} else {
			raw &^= entryCopied
		}
		binary.BigEndian.PutUint64(tbl[p:], raw)
		img.l2Cache.markDirty(f.table)
	}
	if err := img.l2Cache.flush(); err != nil {
		return err
	}
	if img.l1Dirty {
		if err := img.file.Pwrite(encodeTable(img.l1), int64(img.hdr.L1TableOffset), 0); err != nil {
			return err
		}
		img.l1Dirty = false
	}
	return img.file.Flush()
}

// rebuildRefcounts writes a fresh refcount table and blocks, computed from
// the references, after the last used cluster, and switches the header to
// them. The old refcount structures become free space.
func (c *checker) rebuildRefcounts() error {
	img := c.img
	cs := img.clusterSize
	// Forget the old refcount structures: they are not referenced any more.
	h := img.hdr
	unref := func(off, n int64) {
		for idx := off >> img.clusterBits; idx <= (off+n-1)>>img.clusterBits && idx < int64(len(c.refs)); idx++ {
			if c.refs[idx] > 0 {
				c.refs[idx]--
			}
		}
	}
	unref(int64(h.RefcountTableOffset), int64(h.RefcountTableClusters)*cs)
	for _, e := range img.rt {
		if e != 0 {
			unref(int64(e), cs)
		}
	}
	end := int64(0)
	for idx, r := range c.refs {
		if r > 0 {
			end = int64(idx) + 1
		}
	}
	var tc, nb int64 = 1, 1
	for {
		total := end + tc + nb
		nb2 := (total + img.rbEntries - 1) / img.rbEntries
		tc2 := (nb2*8 + cs - 1) / cs
		if nb2 == nb && tc2 == tc {
			break
		}
		nb, tc = nb2, tc2
	}
	if tc*cs > maxRefcountTable {
		return fmt.Errorf("%w: qcow2: rebuilt refcount table would be too large", block.ErrNotSupported)
	}
	total := end + tc + nb
	refs := make([]uint32, total)
	copy(refs, c.refs)
	for i := end; i < total; i++ {
		refs[i] = 1
	}
	tableStart, blocksStart := end, end+tc
	rt := make([]uint64, tc*cs/8)
	blk := make([]byte, cs)
	maxRC := maxRefcount(h.RefcountOrder)
	for b := range nb {
		clear(blk)
		for i := int64(0); i < img.rbEntries; i++ {
			idx := b*img.rbEntries + i
			if idx >= total {
				break
			}
			v := uint64(refs[idx])
			if v > maxRC {
				v = maxRC
			}
			setRefcountAt(blk, i, h.RefcountOrder, v)
		}
		off := (blocksStart + b) << img.clusterBits
		if err := img.file.Pwrite(blk, off, 0); err != nil {
			return err
		}
		rt[b] = uint64(off)
	}
	if err := img.file.Pwrite(encodeTable(rt), tableStart<<img.clusterBits, 0); err != nil {
		return err
	}
	if err := img.file.Flush(); err != nil {
		return err
	}
	h.RefcountTableOffset = uint64(tableStart << img.clusterBits)
	h.RefcountTableClusters = uint32(tc)
	if err := img.writeHeaderLocked(); err != nil {
		return err
	}
	img.rt = rt
	img.rtDirty = false
	img.rbCache.invalidate()
	img.pendingFree = nil
	img.freeHint = 0
	img.highWater = total
	img.compNext = 0
	return nil
}

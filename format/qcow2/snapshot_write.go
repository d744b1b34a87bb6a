package qcow2

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/thinblk/thinblk/block"
)

// Creating, applying and deleting internal snapshots (qemu-img snapshot
// -c, -a, -d). A snapshot is a copy of the active L1 table plus one more
// reference on every L2 table and data cluster it reaches: refcounts count
// the L1 tables a cluster is reachable from, so a cluster shared with a
// snapshot has a refcount of two or more and the active image copies it
// before changing it (writeCluster, l2ForWriteLocked), guided by the COPIED
// flags, which say "refcount exactly one" for the active tables only.
//
// Each operation runs with the metadata lock held and every guest request
// blocked, and orders its writes so that a crash leaves at worst leaked
// clusters (which check -r leaks repairs), never a reference to a freed
// cluster: references are added and made durable before anything points
// at them, and dropped only after what pointed at them is durable.

// ErrSnapshotNotFound is returned when no snapshot has the ID or name asked.
var ErrSnapshotNotFound = errors.New("snapshot not found")

// snapshotExtraSize is the extra data qemu 5.0 and later write per entry:
// the 64-bit VM state size, the disk size and the instruction count.
const snapshotExtraSize = 24

// CreateSnapshot records the active image as a new internal snapshot named
// name, with the next free numeric ID and the date now, and returns it.
// Names need not be unique (as with qemu-img); IDs are.
func (img *Image) CreateSnapshot(name string, now time.Time) (Snapshot, error) {
	var s Snapshot
	err := img.snapshotOp(func() error {
		var err error
		s, err = img.createSnapshotLocked(name, now)
		return err
	})
	return s, img.opError("snapshot-create", 0, 0, err)
}

// DeleteSnapshot removes the first snapshot named name and frees the
// clusters only it referenced. Like qemu-img snapshot -d it matches names
// only: an ID that is also another snapshot's name cannot pick the wrong
// one.
func (img *Image) DeleteSnapshot(name string) error {
	return img.opError("snapshot-delete", 0, 0, img.snapshotOp(func() error { return img.deleteSnapshotLocked(name) }))
}

// ApplySnapshot reverts the active image to the snapshot whose ID, or else
// name, is key, its disk size included; the snapshot stays.
func (img *Image) ApplySnapshot(key string) error {
	return img.opError("snapshot-apply", 0, 0, img.snapshotOp(func() error { return img.applySnapshotLocked(key) }))
}

// snapshotOp runs fn with guest requests blocked and the metadata lock
// held, after writing back every cached change.
func (img *Image) snapshotOp(fn func() error) error {
	if err := img.checkWritable(); err != nil {
		return err
	}
	lk := img.ranges.lock(0, math.MaxInt64, true)
	defer img.ranges.unlock(lk)
	img.mu.Lock()
	defer img.mu.Unlock()
	if img.closed {
		return block.ErrClosed
	}
	if err := img.flushLocked(); err != nil {
		return err
	}
	return fn()
}

func (img *Image) createSnapshotLocked(name string, now time.Time) (Snapshot, error) {
	if maxRefcount(img.hdr.RefcountOrder) < 2 {
		return Snapshot{}, fmt.Errorf("%w: qcow2: %d-bit refcounts cannot count a snapshot's references", block.ErrNotSupported, img.hdr.RefcountBits())
	}
	if len(img.snapshots) >= maxSnapshots {
		return Snapshot{}, fmt.Errorf("%w: qcow2: too many snapshots (%d)", block.ErrNoSpace, len(img.snapshots))
	}
	if len(name) > math.MaxUint16 {
		return Snapshot{}, fmt.Errorf("%w: qcow2: snapshot name too long", block.ErrInvalid)
	}
	if err := img.headroomLocked(img.l1); err != nil {
		return Snapshot{}, err
	}
	// The copy of the active L1 table. COPIED flags mean nothing in a
	// snapshot's table: they are cleared.
	l1 := make([]uint64, len(img.l1))
	for i, e := range img.l1 {
		l1[i] = e &^ entryCopied
	}
	var l1Off int64
	if len(l1) > 0 {
		var err error
		if l1Off, err = img.allocClustersLocked(img.clustersFor(int64(len(l1)) * 8)); err != nil {
			return Snapshot{}, err
		}
		if err := img.file.Pwrite(encodeTable(l1), l1Off, 0); err != nil {
			return Snapshot{}, err
		}
	}
	if _, err := img.adjustTreeLocked(img.l1, 1); err != nil {
		return Snapshot{}, err
	}
	if err := img.refreshCopiedLocked(); err != nil {
		return Snapshot{}, err
	}
	if err := img.flushLocked(); err != nil {
		return Snapshot{}, err
	}
	extra := make([]byte, snapshotExtraSize)
	binary.BigEndian.PutUint64(extra[8:], uint64(img.Size()))
	s := Snapshot{
		L1TableOffset: uint64(l1Off), L1Size: uint32(len(l1)),
		ID: img.nextSnapshotIDLocked(), Name: name,
		DateSec: uint32(now.Unix()), DateNsec: uint32(now.Nanosecond() / 1000 * 1000),
		DiskSize: uint64(img.Size()), Extra: extra,
	}
	list := append(append([]Snapshot(nil), img.snapshots...), s)
	if err := img.writeSnapshotTableLocked(list); err != nil {
		return Snapshot{}, err
	}
	return s, nil
}

func (img *Image) deleteSnapshotLocked(name string) error {
	i := slices.IndexFunc(img.snapshots, func(s Snapshot) bool { return s.Name == name })
	if i < 0 {
		return ErrSnapshotNotFound
	}
	s := img.snapshots[i]
	l1, err := img.readTable(int64(s.L1TableOffset), int64(s.L1Size))
	if err != nil {
		return err
	}
	list := append(append([]Snapshot(nil), img.snapshots[:i]...), img.snapshots[i+1:]...)
	if err := img.writeSnapshotTableLocked(list); err != nil {
		return err
	}
	// Nothing points at the snapshot's tree any more: drop its references.
	freed, err := img.adjustTreeLocked(l1, -1)
	if err != nil {
		return err
	}
	if s.L1Size > 0 {
		first := int64(s.L1TableOffset) >> img.clusterBits
		for idx := first; idx < first+img.clustersFor(int64(s.L1Size)*8); idx++ {
			if err := img.addRefLocked(idx, -1, &freed); err != nil {
				return err
			}
		}
	}
	return img.finishRefsLocked(freed)
}

func (img *Image) applySnapshotLocked(key string) error {
	i, ok := img.findSnapshotLocked(key)
	if !ok {
		return ErrSnapshotNotFound
	}
	s := img.snapshots[i]
	if int64(s.L1Size) > int64(len(img.l1)) {
		return fmt.Errorf("%w: qcow2: snapshot %q has a larger L1 table (%d entries) than the image (%d)", block.ErrNotSupported, s.ID, s.L1Size, len(img.l1))
	}
	// The guest's data changes: dirty bitmaps no longer describe it.
	if err := img.clearAutoclearLocked(); err != nil {
		return err
	}
	l1, err := img.readTable(int64(s.L1TableOffset), int64(s.L1Size))
	if err != nil {
		return err
	}
	for j, e := range l1 {
		if e&l1ReservedMask != 0 || (e&entryOffsetMask)%uint64(img.clusterSize) != 0 {
			return corruptf("snapshot %q: L1 entry %d (0x%x) is invalid", s.ID, j, e)
		}
	}
	if err := img.headroomLocked(l1); err != nil {
		return err
	}
	// The snapshot's tree gains the active image's reference first...
	if _, err := img.adjustTreeLocked(l1, 1); err != nil {
		return err
	}
	if err := img.flushLocked(); err != nil {
		return err
	}
	// ...then the active L1 table switches to it...
	old := img.l1
	img.l1 = make([]uint64, len(old))
	for j, e := range l1 {
		img.l1[j] = e &^ entryCopied
	}
	img.l1Dirty = true
	if err := img.flushLocked(); err != nil {
		return err
	}
	// The disk size comes back with the snapshot, as with qemu-img
	// snapshot -a (clusters past it go with the old tree below).
	if s.DiskSize != 0 && s.DiskSize != img.hdr.Size {
		img.hdr.Size = s.DiskSize
		if err := img.writeHeaderLocked(); err != nil {
			return err
		}
		img.size.Store(int64(s.DiskSize))
	}
	// ...and only then does the old tree lose it.
	freed, err := img.adjustTreeLocked(old, -1)
	if err != nil {
		return err
	}
	return img.finishRefsLocked(freed)
}

// finishRefsLocked sets the COPIED flags after references were dropped,
// writes everything back and lets the file discard the clusters freed.
func (img *Image) finishRefsLocked(freed []int64) error {
	if err := img.refreshCopiedLocked(); err != nil {
		return err
	}
	if err := img.flushLocked(); err != nil {
		return err
	}
	for _, idx := range freed {
		// A hint: a node that cannot discard keeps the bytes.
		_ = img.file.Discard(idx<<img.clusterBits, img.clusterSize, 0)
	}
	return nil
}

// adjustTreeLocked adds addend (+1 or -1) to the refcount of every host
// cluster the tree of l1 references. It returns the clusters whose
// refcount dropped to zero; their L2 tables leave the cache.
func (img *Image) adjustTreeLocked(l1 []uint64, addend int64) ([]int64, error) {
	var freed []int64
	err := img.treeRefsLocked(l1, func(idx int64, l2 bool) error {
		before := len(freed)
		if err := img.addRefLocked(idx, addend, &freed); err != nil {
			return err
		}
		if l2 && len(freed) > before {
			img.l2Cache.drop(idx << img.clusterBits)
		}
		return nil
	})
	return freed, err
}

// headroomLocked checks, before any refcount changes, that every cluster
// the tree of l1 references can take one more reference (1- and 2-bit
// refcounts fill up): a snapshot that failed halfway would leave refcounts
// too high.
func (img *Image) headroomLocked(l1 []uint64) error {
	limit := maxRefcount(img.hdr.RefcountOrder)
	return img.treeRefsLocked(l1, func(idx int64, _ bool) error {
		rc, err := img.refcountLocked(idx)
		if err == nil && rc >= limit {
			err = fmt.Errorf("%w: qcow2: cluster %d already has the most references %d-bit refcounts count (%d)", block.ErrNoSpace, idx, img.hdr.RefcountBits(), rc)
		}
		return err
	})
}

// treeRefsLocked calls fn for every host cluster the L1 table l1 reaches,
// once per reference: for each L2 table, its data clusters (every host
// cluster a compressed cluster touches), then the table itself (l2 true).
func (img *Image) treeRefsLocked(l1 []uint64, fn func(idx int64, l2 bool) error) error {
	for i, e := range l1 {
		l2Off := int64(e & entryOffsetMask)
		if l2Off == 0 {
			continue
		}
		if l2Off >= img.file.Size() {
			return corruptf("L1 entry %d points past the end of the file (0x%x)", i, l2Off)
		}
		tbl, err := img.l2Cache.get(l2Off)
		if err != nil {
			return err
		}
		// Decode the whole table before calling fn: a refcount change may
		// evict it from the cache.
		ms := make([]mapping, img.l2Entries)
		for j := range img.l2Entries {
			if ms[j], err = img.entryLocked(tbl, j, int64(i)*img.l2Entries+j); err != nil {
				return err
			}
		}
		for _, m := range ms {
			switch {
			case m.compressed:
				first := m.compOff >> img.clusterBits
				last := (m.compOff + m.compLen - 1) >> img.clusterBits
				for idx := first; idx <= last; idx++ {
					if err := fn(idx, false); err != nil {
						return err
					}
				}
			case m.host != 0:
				if err := fn(m.host>>img.clusterBits, false); err != nil {
					return err
				}
			}
		}
		if err := fn(l2Off>>img.clusterBits, true); err != nil {
			return err
		}
	}
	return nil
}

// addRefLocked adds addend to the refcount of host cluster idx, recording
// it in freed when it drops to zero.
func (img *Image) addRefLocked(idx, addend int64, freed *[]int64) error {
	rc, err := img.refcountLocked(idx)
	if err != nil {
		return err
	}
	n := int64(rc) + addend
	if n < 0 || (addend < 0 && rc == 0) {
		return corruptf("cluster %d is referenced more often than its refcount (%d) says", idx, rc)
	}
	if uint64(n) > maxRefcount(img.hdr.RefcountOrder) {
		return fmt.Errorf("%w: qcow2: refcount of cluster %d would overflow %d bits", block.ErrNoSpace, idx, img.hdr.RefcountBits())
	}
	if err := img.setRefcountLocked(idx, uint64(n), 0, 0); err != nil {
		return err
	}
	if n == 0 {
		*freed = append(*freed, idx)
	}
	return nil
}

// refreshCopiedLocked sets the COPIED flag of every active L1 entry and of
// every entry of the active L2 tables to "refcount is exactly one", as the
// format requires after references were added or dropped. Flags inside an
// L2 table shared with a snapshot are changed in place: they are read only
// through the active L1 table.
func (img *Image) refreshCopiedLocked() error {
	for i, e := range img.l1 {
		l2Off := int64(e & entryOffsetMask)
		if l2Off == 0 {
			continue
		}
		rc, err := img.refcountLocked(l2Off >> img.clusterBits)
		if err != nil {
			return err
		}
		want := e &^ entryCopied
		if rc == 1 {
			want |= entryCopied
		}
		if want != e {
			img.l1[i] = want
			img.l1Dirty = true
		}
		if err := img.refreshL2CopiedLocked(l2Off); err != nil {
			return err
		}
	}
	return nil
}

func (img *Image) refreshL2CopiedLocked(l2Off int64) error {
	tbl, err := img.l2Cache.get(l2Off)
	if err != nil {
		return err
	}
	// Refcount lookups may evict the table: collect the new entries first.
	type change struct {
		p   int64
		raw uint64
	}
	var changes []change
	for j := range img.l2Entries {
		p := j * img.l2EntrySize
		raw := binary.BigEndian.Uint64(tbl[p:])
		want := raw &^ entryCopied
		if host := int64(raw & entryOffsetMask); raw&entryCompressed == 0 && host != 0 {
			rc, err := img.refcountLocked(host >> img.clusterBits)
			if err != nil {
				return err
			}
			if rc == 1 {
				want |= entryCopied
			}
		}
		if want != raw {
			changes = append(changes, change{p, want})
		}
	}
	if len(changes) == 0 {
		return nil
	}
	if tbl, err = img.l2Cache.get(l2Off); err != nil {
		return err
	}
	for _, c := range changes {
		binary.BigEndian.PutUint64(tbl[c.p:], c.raw)
	}
	img.l2Cache.markDirty(l2Off)
	return nil
}

// writeSnapshotTableLocked writes list as the new snapshot table in new
// clusters, switches the header to it and frees the old table.
func (img *Image) writeSnapshotTableLocked(list []Snapshot) error {
	var b []byte
	for _, s := range list {
		b = append(b, encodeSnapshot(s)...)
	}
	var off int64
	if len(b) > 0 {
		var err error
		if off, err = img.allocClustersLocked(img.clustersFor(int64(len(b)))); err != nil {
			return err
		}
		if err := img.file.Pwrite(b, off, 0); err != nil {
			return err
		}
	}
	if err := img.flushLocked(); err != nil {
		return err
	}
	oldOff, oldSize := int64(img.hdr.SnapshotsOffset), img.snapshotTableSize
	img.hdr.NbSnapshots = uint32(len(list))
	img.hdr.SnapshotsOffset = uint64(off)
	if err := img.writeHeaderLocked(); err != nil {
		return err
	}
	img.snapshots = list
	img.snapshotTableSize = int64(len(b))
	if oldSize > 0 {
		img.freeClustersLater(oldOff, img.clustersFor(oldSize))
		return img.flushLocked()
	}
	return nil
}

// encodeSnapshot returns the table entry of s, padded to 8 bytes.
func encodeSnapshot(s Snapshot) []byte {
	be := binary.BigEndian
	var fixed [40]byte
	be.PutUint64(fixed[0:], s.L1TableOffset)
	be.PutUint32(fixed[8:], s.L1Size)
	be.PutUint16(fixed[12:], uint16(len(s.ID)))
	be.PutUint16(fixed[14:], uint16(len(s.Name)))
	be.PutUint32(fixed[16:], s.DateSec)
	be.PutUint32(fixed[20:], s.DateNsec)
	be.PutUint64(fixed[24:], s.VMClockNsec)
	be.PutUint32(fixed[32:], uint32(min(s.VMStateSize, math.MaxUint32)))
	be.PutUint32(fixed[36:], uint32(len(s.Extra)))
	b := append(fixed[:], s.Extra...)
	b = append(b, s.ID...)
	b = append(b, s.Name...)
	for len(b)%8 != 0 {
		b = append(b, 0)
	}
	return b
}

// findSnapshotLocked finds the snapshot whose ID is key, or else the first
// whose name is key (qemu's lookup order).
func (img *Image) findSnapshotLocked(key string) (int, bool) {
	for i, s := range img.snapshots {
		if s.ID == key {
			return i, true
		}
	}
	for i, s := range img.snapshots {
		if s.Name == key {
			return i, true
		}
	}
	return 0, false
}

// nextSnapshotIDLocked returns one more than the largest numeric ID.
func (img *Image) nextSnapshotIDLocked() string {
	var top uint64
	for _, s := range img.snapshots {
		if n, err := strconv.ParseUint(s.ID, 10, 64); err == nil && n > top {
			top = n
		}
	}
	return strconv.FormatUint(top+1, 10)
}

// clustersFor returns how many clusters n bytes take.
func (img *Image) clustersFor(n int64) int64 {
	return (n + img.clusterSize - 1) >> img.clusterBits
}

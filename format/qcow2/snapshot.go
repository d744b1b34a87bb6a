package qcow2

import (
	"encoding/binary"

	"github.com/thinblk/thinblk/image"
)

// Internal snapshots are read from the snapshot table and kept intact:
// their L1 tables, L2 tables and data clusters have refcounts above one
// while they are shared with the active image, and writes to such clusters
// copy them first (see writeCluster and l2ForWriteLocked). Creating,
// applying and deleting them is in snapshot_write.go.

const maxSnapshotExtra = 1024

// Snapshot is one entry of the snapshot table.
type Snapshot struct {
	L1TableOffset uint64
	L1Size        uint32
	ID, Name      string
	DateSec       uint32
	DateNsec      uint32
	VMClockNsec   uint64
	VMStateSize   uint64
	DiskSize      uint64 // 0 when the entry does not record it
	Extra         []byte
}

// SnapshotList describes the internal snapshots for `info` (its top-level
// "snapshots" list and "Snapshot list:" table, as qemu-img info prints
// them). The instruction count comes from the entry's extra data when it
// records one (bytes 16-23), else it is -1.
func (img *Image) SnapshotList() []image.SnapshotInfo {
	img.mu.Lock()
	defer img.mu.Unlock()
	out := make([]image.SnapshotInfo, 0, len(img.snapshots))
	for _, s := range img.snapshots {
		icount := int64(-1)
		if len(s.Extra) >= 24 {
			icount = int64(binary.BigEndian.Uint64(s.Extra[16:]))
		}
		out = append(out, image.SnapshotInfo{
			ID: s.ID, Name: s.Name, VMStateSize: s.VMStateSize,
			DateSec: int64(s.DateSec), DateNsec: int64(s.DateNsec),
			VMClockNsec: s.VMClockNsec, ICount: icount,
		})
	}
	return out
}

// Snapshots returns the snapshot table.
func (img *Image) Snapshots() []Snapshot {
	img.mu.Lock()
	defer img.mu.Unlock()
	return append([]Snapshot(nil), img.snapshots...)
}

// loadSnapshots reads and validates the snapshot table; it records the
// table's size in bytes for check.
func (img *Image) loadSnapshots() error {
	h := img.hdr
	img.snapshots = nil
	pos := int64(h.SnapshotsOffset)
	fileSize := img.file.Size()
	for i := uint32(0); i < h.NbSnapshots; i++ {
		var fixed [40]byte
		if pos+40 > fileSize {
			return corruptf("snapshot table entry %d past end of file", i)
		}
		if err := img.file.Pread(fixed[:], pos); err != nil {
			return err
		}
		be := binary.BigEndian
		s := Snapshot{
			L1TableOffset: be.Uint64(fixed[0:]),
			L1Size:        be.Uint32(fixed[8:]),
			DateSec:       be.Uint32(fixed[16:]),
			DateNsec:      be.Uint32(fixed[20:]),
			VMClockNsec:   be.Uint64(fixed[24:]),
			VMStateSize:   uint64(be.Uint32(fixed[32:])),
		}
		idLen, nameLen := int64(be.Uint16(fixed[12:])), int64(be.Uint16(fixed[14:]))
		extraLen := int64(be.Uint32(fixed[36:]))
		if extraLen > maxSnapshotExtra {
			return corruptf("snapshot %d: extra data too large (%d bytes)", i, extraLen)
		}
		varLen := extraLen + idLen + nameLen
		if pos+40+varLen > fileSize {
			return corruptf("snapshot table entry %d past end of file", i)
		}
		v := make([]byte, varLen)
		if err := img.file.Pread(v, pos+40); err != nil {
			return err
		}
		s.Extra = v[:extraLen]
		if extraLen >= 8 {
			s.VMStateSize = be.Uint64(s.Extra[0:])
		}
		if extraLen >= 16 {
			s.DiskSize = be.Uint64(s.Extra[8:])
		}
		s.ID = string(v[extraLen : extraLen+idLen])
		s.Name = string(v[extraLen+idLen:])
		cs := uint64(img.clusterSize)
		if s.L1TableOffset%cs != 0 || uint64(s.L1Size)*8 > maxL1Bytes ||
			s.L1TableOffset > uint64(fileSize) || uint64(s.L1Size)*8 > uint64(fileSize)-s.L1TableOffset {
			return corruptf("snapshot %q: invalid L1 table (0x%x, %d entries)", s.ID, s.L1TableOffset, s.L1Size)
		}
		img.snapshots = append(img.snapshots, s)
		pos += (40 + varLen + 7) &^ 7
	}
	img.snapshotTableSize = pos - int64(h.SnapshotsOffset)
	return nil
}

package qcow2

import (
	"errors"

	"github.com/thinblk/thinblk/block"
)

// Pwrite stores p at guest offset off. Each cluster is written in place
// when it is allocated and owned (refcount 1); otherwise a new host cluster
// is allocated and the parts of the touched units (clusters, or subclusters
// with extended L2) that p does not cover are copied from the old content
// or the backing chain. The data is written before the L2 entry points at
// it. With FUA the image is flushed before returning.
func (img *Image) Pwrite(p []byte, off int64, flags block.Flags) error {
	n := int64(len(p))
	if err := img.beginGuestChange(); err != nil {
		return img.opError("pwrite", off, n, err)
	}
	if err := block.CheckRange(off, n, img.Size()); err != nil {
		return img.opError("pwrite", off, n, err)
	}
	if n == 0 {
		return nil
	}
	lk := img.ranges.lock(off>>img.clusterBits, (off+n-1)>>img.clusterBits+1, true)
	err := img.writeLocked(p, off)
	img.ranges.unlock(lk)
	if err == nil && flags.Has(block.FUA) {
		err = img.Flush()
	}
	return img.opError("pwrite", off, n, err)
}

// writeLocked writes p at off. Runs of whole clusters go out as one
// pwrite each (see writeRun); partial clusters, and whole clusters that
// need copy-on-write, go cluster by cluster.
//
// Preconditions: the guest clusters of the range are locked exclusive.
func (img *Image) writeLocked(p []byte, off int64) error {
	for len(p) > 0 {
		vc := off >> img.clusterBits
		inCluster := off - vc<<img.clusterBits
		if inCluster == 0 && int64(len(p)) >= img.clusterSize {
			done, err := img.writeRun(vc, p[:int64(len(p))>>img.clusterBits<<img.clusterBits])
			if err != nil {
				return err
			}
			if done > 0 {
				p, off = p[done:], off+done
				continue
			}
		}
		c := min(int64(len(p)), img.clusterSize-inCluster)
		if err := img.writeCluster(vc, p[:c], inCluster); err != nil {
			return err
		}
		p, off = p[c:], off+c
	}
	return nil
}

// writeCluster writes data at byte a of guest cluster vc.
//
// Preconditions: guest cluster vc is locked exclusive; img.mu not held.
func (img *Image) writeCluster(vc int64, data []byte, a int64) error {
	img.mu.Lock()
	ms, err := img.lookupLocked(vc, 1)
	if err != nil {
		img.mu.Unlock()
		return err
	}
	old := ms[0]
	needNew := old.compressed || old.host == 0 || !old.copied
	var newHost int64
	if needNew {
		if newHost, err = img.allocClustersLocked(1); err != nil {
			img.mu.Unlock()
			return err
		}
	}
	img.mu.Unlock()

	m := old
	if needNew {
		m = mapping{host: newHost, copied: true, alloc: old.alloc, zero: old.zero}
		if old.compressed {
			m.alloc, m.zero = allUnits(img.units), 0
		}
	}
	img.acquireIO()
	err = img.writeClusterData(vc, old, m, needNew, data, a)
	img.releaseIO()
	if err != nil {
		if needNew {
			img.mu.Lock()
			// Nothing points at the new cluster yet: release it at once.
			_ = img.setRefcountLocked(newHost>>img.clusterBits, 0, 0, 0)
			img.mu.Unlock()
		}
		return err
	}

	b := a + int64(len(data))
	touched := unitRange(int(a/img.unitSize), int((b-1)/img.unitSize))
	m.alloc |= touched
	m.zero &^= touched
	if m == old {
		return nil
	}
	img.mu.Lock()
	defer img.mu.Unlock()
	if err := img.setMappingLocked(vc, m); err != nil {
		return err
	}
	if needNew {
		img.freeMappingLater(old)
	}
	return nil
}

// writeClusterData writes the data of one cluster write to m.host: data at
// byte a, plus whatever the touched units need from the old content.
func (img *Image) writeClusterData(vc int64, old, m mapping, needNew bool, data []byte, a int64) error {
	cs, us := img.clusterSize, img.unitSize
	cstart := vc << img.clusterBits
	b := a + int64(len(data))
	if needNew && (old.compressed || old.host != 0) {
		// Copy-on-write of a compressed or shared cluster: rebuild the
		// whole cluster.
		full := make([]byte, cs)
		if old.compressed {
			if err := img.decompressCluster(old, full); err != nil {
				return err
			}
		} else if err := img.readHostCluster(full, old.host); err != nil {
			return err
		}
		if err := img.fillUnits(full, 0, cstart, old, a, b); err != nil {
			return err
		}
		copy(full[a:], data)
		return img.file.Pwrite(full, m.host, 0)
	}
	ua, ub := a/us*us, (b+us-1)/us*us
	headPartial := a > ua && m.alloc&(1<<(a/us)) == 0
	tailPartial := b < ub && m.alloc&(1<<((b-1)/us)) == 0
	if !headPartial && !tailPartial {
		return img.file.Pwrite(data, m.host+a, 0)
	}
	if needNew && img.fillIsZero(m, cstart, a, b) {
		// A fresh cluster whose fill is zeros: the part of the host range
		// inside the file is zeroed natively, the part past its end was
		// never written and stays a hole; only the data is written. (QEMU
		// fallocates the whole range instead, which costs more and makes
		// its map report such clusters as not zero.)
		if ok, err := img.zeroHostRange(m.host+ua, m.host+ub); err != nil {
			return err
		} else if ok {
			if err := img.file.Pwrite(data, m.host+a, 0); err != nil {
				return err
			}
			if end := m.host + ub; end > img.file.Size() {
				// The file must cover the whole unit: reads of it must not
				// run past the end of the file.
				return img.file.Pwrite([]byte{0}, end-1, 0)
			}
			return nil
		}
	}
	// Only the partial units without data of their own are filled; an
	// allocated partial unit keeps its bytes outside [a, b).
	from, to := a, b
	if headPartial {
		from = ua
	}
	if tailPartial {
		to = ub
	}
	buf := make([]byte, to-from)
	if err := img.fillUnits(buf, from, cstart, m, a, b); err != nil {
		return err
	}
	copy(buf[a-from:], data)
	return img.file.Pwrite(buf, m.host+from, 0)
}

// readHostCluster reads the host cluster at host into buf (a cluster).
// With subclusters the file may end inside the cluster, after its last
// allocated unit: the rest was never written and reads as zeros.
func (img *Image) readHostCluster(buf []byte, host int64) error {
	n := min(int64(len(buf)), img.file.Size()-host)
	if n <= 0 {
		return corruptf("host cluster 0x%x is past the end of the file", host)
	}
	clear(buf[n:])
	return img.file.Pread(buf[:n], host)
}

// fillUnits fills, in buf (which holds cluster bytes from bufStart), the
// parts outside [a, b) of the units that [a, b) touches partially and that
// have no data of their own (allocated units are left as they are). Zero
// units read zeros; others read the backing chain.
func (img *Image) fillUnits(buf []byte, bufStart, cstart int64, m mapping, a, b int64) error {
	us := img.unitSize
	size := img.Size()
	fill := func(u int64, from, to int64) error {
		if from >= to || m.alloc&(1<<u) != 0 {
			return nil
		}
		dst := buf[from-bufStart : to-bufStart]
		if m.zero&(1<<u) != 0 || img.backing == nil || cstart+from >= size {
			clear(dst)
			return nil
		}
		if cstart+to > size {
			clear(dst[size-cstart-from:])
			dst = dst[:size-cstart-from]
		}
		return img.readBacking(dst, cstart+from)
	}
	ua, ub := a/us, (b-1)/us
	if err := fill(ua, ua*us, a); err != nil {
		return err
	}
	return fill(ub, b, (ub+1)*us)
}

// fillIsZero reports whether fillUnits would fill the partial units of
// [a, b) with zeros only.
func (img *Image) fillIsZero(m mapping, cstart, a, b int64) bool {
	if img.backing == nil {
		return true
	}
	us, size := img.unitSize, img.Size()
	zeroUnit := func(u, from int64) bool {
		return m.zero&(1<<u) != 0 || cstart+from >= size
	}
	ua, ub := a/us, (b-1)/us
	return (a == ua*us || zeroUnit(ua, ua*us)) && (b == (ub+1)*us || zeroUnit(ub, b))
}

// zeroHostRange makes host bytes [from, to) of a freshly allocated cluster
// read as zeros without writing them: the part inside the file is zeroed
// natively, the part past its end has never been written (the file only
// grows). It returns false when the file node cannot zero natively (the
// caller writes zeros instead).
func (img *Image) zeroHostRange(from, to int64) (bool, error) {
	end := min(to, img.file.Size())
	if from >= end {
		return true, nil
	}
	err := img.file.WriteZeroes(from, end-from, block.NoFallback)
	if errors.Is(err, block.ErrNotSupported) {
		return false, nil
	}
	return err == nil, err
}

// runKind classifies a whole-cluster write for writeRun.
type runKind uint8

const (
	runNone    runKind = iota // needs writeCluster (copy-on-write)
	runFresh                  // no host cluster: allocate a new one
	runInPlace                // owned host cluster: overwrite it
)

// classify says how a whole-cluster write to a cluster mapped by m runs.
func classify(m mapping) runKind {
	switch {
	case m.compressed:
		return runNone
	case m.host == 0:
		return runFresh
	case m.copied:
		return runInPlace
	}
	return runNone
}

// writeRun writes the longest prefix of p (whole clusters from guest
// cluster vc, within one L2 table) whose clusters are all fresh (no host
// cluster: unallocated, or zero without one) or all owned and contiguous
// on the host, with one pwrite: fresh clusters get one contiguous
// allocation (at the first free cluster, so possibly fewer than the run)
// and their L2 entries are set together after the data is written. It returns the bytes written, 0 when the first cluster needs
// copy-on-write (the caller then uses writeCluster).
//
// On failure nothing points at newly allocated clusters, which are
// released; clusters written in place may hold part of the new data, as
// with any failed write.
//
// Preconditions: the guest clusters of the range are locked exclusive;
// img.mu not held; len(p) is a positive multiple of the cluster size.
func (img *Image) writeRun(vc int64, p []byte) (int64, error) {
	cs := img.clusterSize
	n := min(int64(len(p))>>img.clusterBits, img.l2Entries-vc%img.l2Entries)
	img.mu.Lock()
	ms, err := img.lookupLocked(vc, n)
	if err != nil {
		img.mu.Unlock()
		return 0, err
	}
	kind := classify(ms[0])
	if kind == runNone {
		img.mu.Unlock()
		return 0, nil
	}
	count := int64(1)
	for count < n && classify(ms[count]) == kind &&
		(kind == runFresh || ms[count].host == ms[0].host+count*cs) {
		count++
	}
	host := ms[0].host
	if kind == runFresh {
		// The free run found may be shorter: the caller writes the rest
		// with the next call.
		if host, count, err = img.allocRunLocked(count); err != nil {
			img.mu.Unlock()
			return 0, err
		}
	}
	img.mu.Unlock()

	img.acquireIO()
	if kind == runFresh {
		img.reserve(host, count*cs)
	}
	err = img.file.Pwrite(p[:count*cs], host, 0)
	img.releaseIO()
	img.mu.Lock()
	defer img.mu.Unlock()
	if err != nil {
		if kind == runFresh {
			for i := range count {
				_ = img.setRefcountLocked(host>>img.clusterBits+i, 0, 0, 0)
			}
		}
		return 0, err
	}
	all := allUnits(img.units)
	for i := range count {
		old := ms[i]
		m := mapping{host: host + i*cs, copied: true, alloc: all}
		if kind == runInPlace && old.alloc == all && old.zero == 0 {
			continue // already maps exactly this
		}
		if err := img.setMappingLocked(vc+i, m); err != nil {
			return 0, err
		}
	}
	return count * cs, nil
}

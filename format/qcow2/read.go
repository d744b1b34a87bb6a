package qcow2

import (
	"github.com/thinblk/thinblk/block"
)

// Pread fills p from guest offset off. Clusters are located under the
// metadata lock; the data is read outside it, with the guest clusters held
// shared so that no writer frees or replaces them meanwhile.
func (img *Image) Pread(p []byte, off int64) error {
	n := int64(len(p))
	if err := block.CheckRange(off, n, img.Size()); err != nil {
		return img.opError("pread", off, n, err)
	}
	if n == 0 {
		return nil
	}
	lk := img.ranges.lock(off>>img.clusterBits, (off+n-1)>>img.clusterBits+1, false)
	defer img.ranges.unlock(lk)
	return img.opError("pread", off, n, img.readLocked(p, off))
}

// readSource says where a piece of a read comes from.
type readSource int

const (
	fromZero readSource = iota
	fromHost
	fromBacking
	fromCompressed
)

// readLocked reads guest data into p.
//
// Preconditions: the guest clusters of the range are locked (shared or
// exclusive) by the caller; img.mu is not held.
func (img *Image) readLocked(p []byte, off int64) error {
	var cbuf []byte // one decompressed cluster
	for len(p) > 0 {
		vc := off >> img.clusterBits
		nClusters := ((off + int64(len(p)) - 1) >> img.clusterBits) - vc + 1
		img.mu.Lock()
		ms, err := img.lookupLocked(vc, nClusters)
		img.mu.Unlock()
		if err != nil {
			return err
		}
		// Walk the units of these clusters, merging runs with one source.
		var (
			runSrc  readSource = -1
			runLen  int64
			runHost int64
			runOff  = off
			runP    = p
		)
		flush := func() error {
			if runLen == 0 {
				return nil
			}
			dst := runP[:runLen]
			var err error
			switch runSrc {
			case fromZero:
				clear(dst)
			case fromHost:
				img.acquireIO()
				err = img.file.Pread(dst, runHost)
				img.releaseIO()
			case fromBacking:
				err = img.readBacking(dst, runOff)
			}
			runP = runP[runLen:]
			runOff += runLen
			runLen = 0
			return err
		}
		for i, m := range ms {
			cstart := (vc + int64(i)) << img.clusterBits
			if m.compressed {
				if err := flush(); err != nil {
					return err
				}
				if cbuf == nil {
					cbuf = make([]byte, img.clusterSize)
				}
				if err := img.decompressCluster(m, cbuf); err != nil {
					return err
				}
				a := off - cstart
				c := copy(p, cbuf[a:])
				p, off = p[c:], off+int64(c)
				runP, runOff = p, off
				continue
			}
			for len(p) > 0 && off < cstart+img.clusterSize {
				inCluster := off - cstart
				u := int(inCluster / img.unitSize)
				c := min(int64(len(p)), int64(u+1)*img.unitSize-inCluster)
				src, host := fromBacking, int64(0)
				switch {
				case m.alloc&(1<<u) != 0:
					src, host = fromHost, m.host+inCluster
				case m.zero&(1<<u) != 0:
					src = fromZero
				case img.backing == nil:
					src = fromZero
				}
				if src != runSrc || (src == fromHost && host != runHost+runLen) {
					if err := flush(); err != nil {
						return err
					}
					runSrc, runHost = src, host
				}
				runLen += c
				p, off = p[c:], off+c
			}
		}
		if err := flush(); err != nil {
			return err
		}
	}
	return nil
}

// readBacking reads guest range [off, off+len(p)) from the backing node;
// bytes past its end read as zeros.
func (img *Image) readBacking(p []byte, off int64) error {
	if img.backing == nil {
		clear(p)
		return nil
	}
	bsize := img.backing.Size()
	n := int64(len(p))
	if off >= bsize {
		clear(p)
		return nil
	}
	if off+n > bsize {
		clear(p[bsize-off:])
		p = p[:bsize-off]
	}
	return img.backing.Pread(p, off)
}

package qcow2

import (
	"bytes"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/zstd"

	"github.com/thinblk/thinblk/block"
)

// Compressed clusters hold one guest cluster, compressed with raw deflate
// (RFC 1951, no zlib header, a 4 KiB window as QEMU uses) or with zstd
// (one frame). The compressed bytes may be followed by unrelated bytes up to
// the end of their last 512-byte sector: decompression stops once a whole
// cluster is produced.

// deflateWindow is QEMU's window (windowBits -12): QEMU inflates with it, so
// we must never emit longer distances.
const deflateWindow = 4096

var zstdDecoders = sync.Pool{New: func() any {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
	if err != nil {
		return err
	}
	return d
}}

// decompressCluster reads and inflates the compressed cluster of m into dst
// (one cluster long).
func (img *Image) decompressCluster(m mapping, dst []byte) error {
	n := m.compLen
	if end := img.file.Size(); m.compOff+n > end {
		n = end - m.compOff
	}
	if n <= 0 || n > 2*img.clusterSize+512 {
		return corruptf("compressed cluster at 0x%x: bad length %d", m.compOff, m.compLen)
	}
	src := make([]byte, n)
	if err := img.file.Pread(src, m.compOff); err != nil {
		return err
	}
	var r io.Reader
	switch img.hdr.CompressionType {
	case CompressionZstd:
		v := zstdDecoders.Get()
		d, ok := v.(*zstd.Decoder)
		if !ok {
			return fmt.Errorf("qcow2: zstd: %v", v)
		}
		defer zstdDecoders.Put(d)
		if err := d.Reset(bytes.NewReader(src)); err != nil {
			return corruptf("compressed cluster at 0x%x: %v", m.compOff, err)
		}
		r = d
	default:
		fr := flate.NewReader(bytes.NewReader(src))
		defer fr.Close()
		r = fr
	}
	if _, err := io.ReadFull(r, dst); err != nil {
		return corruptf("compressed cluster at 0x%x: %v", m.compOff, err)
	}
	return nil
}

// compressCluster compresses one cluster with the image's compression
// type. It returns nil when the result would not be smaller than the
// cluster (the caller then writes it uncompressed).
func (img *Image) compressCluster(src []byte) ([]byte, error) {
	var out bytes.Buffer
	switch img.hdr.CompressionType {
	case CompressionZstd:
		enc, err := zstd.NewWriter(&out, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithWindowSize(max(int(img.clusterSize), zstd.MinWindowSize)))
		if err != nil {
			return nil, err
		}
		if _, err := enc.Write(src); err != nil {
			return nil, err
		}
		if err := enc.Close(); err != nil {
			return nil, err
		}
	default:
		w, err := flate.NewWriterWindow(&out, deflateWindow)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(src); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
	}
	if int64(out.Len()) >= img.clusterSize-512 {
		return nil, nil
	}
	return out.Bytes(), nil
}

// WriteCompressed stores one whole guest cluster at off (cluster aligned;
// the last cluster of an unaligned image may be short) compressed. Data
// that does not compress is written as a normal cluster. It is meant for
// filling fresh images (convert -c); the previous content of the cluster is
// released.
func (img *Image) WriteCompressed(p []byte, off int64) error {
	if err := img.beginGuestChange(); err != nil {
		return img.opError("pwrite-compressed", off, int64(len(p)), err)
	}
	size := img.Size()
	if err := block.CheckRange(off, int64(len(p)), size); err != nil {
		return img.opError("pwrite-compressed", off, int64(len(p)), err)
	}
	if off%img.clusterSize != 0 || (int64(len(p)) != img.clusterSize && off+int64(len(p)) != size) {
		return img.opError("pwrite-compressed", off, int64(len(p)), fmt.Errorf("%w: compressed writes take one whole cluster", block.ErrInvalid))
	}
	src := p
	if int64(len(p)) < img.clusterSize {
		src = make([]byte, img.clusterSize)
		copy(src, p)
	}
	data, err := img.compressCluster(src)
	if err != nil {
		return img.opError("pwrite-compressed", off, int64(len(p)), err)
	}
	if data == nil {
		return img.Pwrite(p, off, 0)
	}
	vc := off >> img.clusterBits
	lk := img.ranges.lock(vc, vc+1, true)
	defer img.ranges.unlock(lk)
	img.mu.Lock()
	defer img.mu.Unlock()
	ms, err := img.lookupLocked(vc, 1)
	if err != nil {
		return img.opError("pwrite-compressed", off, int64(len(p)), err)
	}
	host, err := img.allocBytesLocked(int64(len(data)))
	if err != nil {
		return img.opError("pwrite-compressed", off, int64(len(p)), err)
	}
	// Compressed data is written under the metadata lock: it shares clusters
	// with other compressed clusters being placed.
	if err := img.file.Pwrite(data, host, 0); err != nil {
		return img.opError("pwrite-compressed", off, int64(len(p)), err)
	}
	x := 62 - (img.clusterBits - 8)
	sectors := uint64((host+int64(len(data))-1)>>9 - host>>9)
	raw := uint64(entryCompressed) | uint64(host) | sectors<<x
	if err := img.setRawLocked(vc, raw, 0); err != nil {
		return img.opError("pwrite-compressed", off, int64(len(p)), err)
	}
	img.freeMappingLater(ms[0])
	return nil
}

// allocBytesLocked allocates n bytes (n < cluster size) for compressed
// data, packing them after the previous compressed cluster when they fit in
// its host cluster; every host cluster touched gains one reference.
//
// Preconditions: img.mu held.
func (img *Image) allocBytesLocked(n int64) (int64, error) {
	cs := img.clusterSize
	if img.compNext != 0 && img.compNext%cs != 0 && img.compNext%cs+n <= cs {
		off := img.compNext
		idx := off >> img.clusterBits
		rc, err := img.refcountLocked(idx)
		if err != nil {
			return 0, err
		}
		if rc > 0 && rc < maxRefcount(img.hdr.RefcountOrder) {
			if err := img.setRefcountLocked(idx, rc+1, 0, 0); err != nil {
				return 0, err
			}
			img.compNext = off + n
			return off, nil
		}
	}
	off, err := img.allocClustersLocked(1)
	if err != nil {
		return 0, err
	}
	img.compNext = off + n
	return off, nil
}

package vmdk

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/thinblk/thinblk/block"
)

// maxCachedGTs bounds the grain tables kept in memory (8 MiB of tables at
// 512 entries each); past it the cache is dropped and refilled.
const maxCachedGTs = 4096

// maxRunGrains bounds the grains one BlockStatus call merges, so that a
// call on a huge disk returns in bounded time (the caller asks again).
const maxRunGrains = 1 << 16

// sparseExtent is a hosted sparse extent: a grain directory of grain
// tables mapping grains to sectors of file.
type sparseExtent struct {
	file     block.Driver
	ownsFile bool
	name     string
	extType  string // the descriptor's extent type, "" for a monolithic file
	hdr      SparseHeader
	bytes    int64 // the extent's size in the disk
	fileSize int64
	grain    int64 // grain size in bytes
	gtSize   int64 // bytes one grain table maps
	gd       []uint32
	// compressed grains (streamOptimized); markers: each compressed grain
	// starts with a 12-byte grain marker (lba, size).
	compressed, markers bool

	mu sync.Mutex // guards gts and the decompressed-grain cache
	// gts caches grain tables by their sector in the file. Entries are
	// read and written atomically (a writer updates them in place).
	gts map[uint32][]uint32
	// pinned: every grain table is loaded and never evicted (writable
	// images, so that updates are never lost to a reload).
	pinned bool
	// lastGrain is the host sector of the grain in lastData (0: none).
	lastGrain uint32
	lastData  []byte
}

// openSparseExtent reads the header (or the footer of a streamOptimized
// extent) and grain directory of the sparse extent in file. bytes is the
// extent's size in the disk; -1 takes the header's capacity.
func openSparseExtent(file block.Driver, owns bool, name string, bytes int64) (*sparseExtent, *SparseHeader, error) {
	fileSize := file.Size()
	if fileSize < headerSize {
		return nil, nil, corruptf("%s: file of %d bytes is too short for a sparse extent header", name, fileSize)
	}
	b := make([]byte, headerSize)
	if err := file.Pread(b, 0); err != nil {
		return nil, nil, err
	}
	h, err := parseSparseHeader(b)
	if err != nil {
		return nil, nil, err
	}
	if h.GDOffset == gdAtEnd {
		// streamOptimized: footer marker, footer header, end-of-stream
		// marker in the last three sectors.
		if fileSize < 4*sectorSize {
			return nil, nil, corruptf("%s: streamOptimized extent too short for a footer", name)
		}
		tail := make([]byte, 3*sectorSize)
		if err := file.Pread(tail, fileSize-3*sectorSize); err != nil {
			return nil, nil, err
		}
		if m := parseMarker(tail); m.Size != 0 || m.Type != markerFooter {
			return nil, nil, corruptf("%s: no footer marker before the footer (type %d)", name, m.Type)
		}
		if m := parseMarker(tail[2*sectorSize:]); m.Size != 0 || m.Type != markerEOS {
			return nil, nil, corruptf("%s: no end-of-stream marker", name)
		}
		if h, err = parseSparseHeader(tail[sectorSize : 2*sectorSize]); err != nil {
			return nil, nil, fmt.Errorf("footer: %w", err)
		}
	}
	if err := h.validate(fileSize); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	capacity := int64(h.Capacity) * sectorSize
	if bytes < 0 {
		bytes = capacity
	}
	if bytes > capacity {
		return nil, nil, corruptf("%s: extent of %d bytes is larger than its sparse file's capacity %d", name, bytes, capacity)
	}
	n := h.numGDEs()
	raw := make([]byte, n*4) // bounded by the file size in validate
	if err := file.Pread(raw, int64(h.GDOffset)*sectorSize); err != nil {
		return nil, nil, err
	}
	gd := make([]uint32, n)
	gtBytes := int64(h.NumGTEsPerGT) * 4
	for i := range gd {
		gd[i] = binary.LittleEndian.Uint32(raw[i*4:])
		if gd[i] != 0 && (int64(gd[i]) > fileSize/sectorSize || gtBytes > fileSize-int64(gd[i])*sectorSize) {
			return nil, nil, corruptf("%s: grain table %d at sector %d is outside the file (%d bytes)", name, i, gd[i], fileSize)
		}
	}
	e := &sparseExtent{
		file: file, ownsFile: owns, name: name, hdr: h, bytes: bytes, fileSize: fileSize,
		grain: h.grainBytes(), gtSize: h.gtCoverage(), gd: gd,
		compressed: h.Flags&flagCompressed != 0, markers: h.Flags&flagMarkers != 0,
		gts: map[uint32][]uint32{},
	}
	return e, &h, nil
}

func (e *sparseExtent) size() int64 { return e.bytes }

// gte returns the grain table entry of the grain holding off.
func (e *sparseExtent) gte(off int64) (uint32, error) {
	gdIndex := off / e.gtSize
	if gdIndex >= int64(len(e.gd)) {
		return 0, corruptf("%s: offset %d beyond the grain directory", e.name, off)
	}
	gtSector := e.gd[gdIndex]
	if gtSector == 0 {
		return gteUnallocated, nil
	}
	gt, err := e.table(gtSector)
	if err != nil {
		return 0, err
	}
	return atomic.LoadUint32(&gt[(off%e.gtSize)/e.grain]), nil
}

// table returns the grain table at gtSector, from the cache or the file.
func (e *sparseExtent) table(gtSector uint32) ([]uint32, error) {
	e.mu.Lock()
	gt, ok := e.gts[gtSector]
	e.mu.Unlock()
	if ok {
		return gt, nil
	}
	raw := make([]byte, int(e.hdr.NumGTEsPerGT)*4) // checked inside the file at open
	if err := e.file.Pread(raw, int64(gtSector)*sectorSize); err != nil {
		return nil, err
	}
	gt = make([]uint32, e.hdr.NumGTEsPerGT)
	for i := range gt {
		gt[i] = binary.LittleEndian.Uint32(raw[i*4:])
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if cached, ok := e.gts[gtSector]; ok {
		return cached, nil // loaded meanwhile
	}
	if len(e.gts) >= maxCachedGTs && !e.pinned {
		clear(e.gts)
	}
	e.gts[gtSector] = gt
	return gt, nil
}

// status merges grains of the same kind (and, for plain allocated grains,
// contiguous in the file) into one run.
func (e *sparseExtent) status(off, n int64) (block.Extent, error) {
	n = min(n, e.bytes-off)
	first, err := e.grainStatus(off)
	if err != nil {
		return block.Extent{}, err
	}
	end := min(off-off%e.grain+e.grain, off+n)
	for i := 0; end < off+n && i < maxRunGrains; i++ {
		if first.Status == 0 && e.gd[end/e.gtSize] == 0 {
			// A whole missing grain table: skip it at once.
			end = min(end-end%e.gtSize+e.gtSize, off+n)
			continue
		}
		next, err := e.grainStatus(end)
		if err != nil {
			return block.Extent{}, err
		}
		if next.Status != first.Status ||
			(first.Status&block.Compressed == 0 && first.HostOffset >= 0 && next.HostOffset != first.HostOffset+(end-off)) {
			break
		}
		end = min(end+e.grain, off+n)
	}
	first.Len = end - off
	return first, nil
}

// grainStatus is the status of the grain holding off, with the host offset
// of off itself (of the grain marker for a compressed grain).
func (e *sparseExtent) grainStatus(off int64) (block.Extent, error) {
	gte, err := e.gte(off)
	if err != nil {
		return block.Extent{}, err
	}
	switch gte {
	case gteUnallocated:
		return block.Extent{Off: off, Status: 0, HostOffset: -1}, nil
	case gteZeroed:
		return block.Extent{Off: off, Status: block.Zero, HostOffset: -1}, nil
	}
	host := int64(gte) * sectorSize
	if e.compressed {
		return block.Extent{Off: off, Status: block.Data | block.Allocated | block.Compressed, HostOffset: host}, nil
	}
	return block.Extent{Off: off, Status: block.Data | block.Allocated, HostOffset: host + off%e.grain}, nil
}

// readData reads allocated grains: plain grains straight from the file,
// compressed grains through the one-grain decompression cache.
func (e *sparseExtent) readData(p []byte, off int64) error {
	for len(p) > 0 {
		chunk := min(int64(len(p)), e.grain-off%e.grain)
		gte, err := e.gte(off)
		if err != nil {
			return err
		}
		switch {
		case gte == gteUnallocated || gte == gteZeroed:
			clear(p[:chunk])
		case e.compressed:
			if err := e.readCompressed(p[:chunk], off, gte); err != nil {
				return err
			}
		default:
			host := int64(gte)*sectorSize + off%e.grain
			if host+chunk > e.file.Size() { // the file grows when the image is writable
				return corruptf("%s: grain at sector %d runs past the end of the file", e.name, gte)
			}
			if err := e.file.Pread(p[:chunk], host); err != nil {
				return err
			}
		}
		p = p[chunk:]
		off += chunk
	}
	return nil
}

// readCompressed fills p (inside one grain) from the compressed grain at
// sector gte. The last grain decompressed is cached for small sequential
// reads; decompression runs outside the lock so that parallel readers
// decompress in parallel.
func (e *sparseExtent) readCompressed(p []byte, off int64, gte uint32) error {
	within := off % e.grain
	e.mu.Lock()
	if e.lastGrain == gte && e.lastData != nil {
		copy(p, e.lastData[within:])
		e.mu.Unlock()
		return nil
	}
	e.mu.Unlock()
	data, err := inflateGrain(e.file, e.file.Size(), int64(gte)*sectorSize, e.grain, e.markers)
	if err != nil {
		return fmt.Errorf("%s: %w", e.name, err)
	}
	copy(p, data[within:])
	e.mu.Lock()
	e.lastGrain, e.lastData = gte, data
	e.mu.Unlock()
	return nil
}

// inflateGrain decompresses the grain of grain bytes stored at host in
// file (behind a grain marker when markers). A short stream leaves the
// rest of the grain zero.
func inflateGrain(file block.Driver, fileSize, host, grain int64, markers bool) ([]byte, error) {
	sector := host / sectorSize
	if host >= fileSize {
		return nil, corruptf("compressed grain at sector %d is outside the file", sector)
	}
	// A deflate stream of one grain never needs much more than the grain.
	limit := min(fileSize-host, grain+grain/2+4096)
	if markers {
		if fileSize-host < 12 {
			return nil, corruptf("grain marker at sector %d runs past the end of the file", sector)
		}
		var m [12]byte
		if err := file.Pread(m[:], host); err != nil {
			return nil, err
		}
		size := int64(binary.LittleEndian.Uint32(m[8:]))
		if size == 0 || size > limit-12 {
			return nil, corruptf("compressed grain at sector %d has size %d", sector, size)
		}
		host += 12
		limit = size
	}
	buf := make([]byte, limit)
	if err := file.Pread(buf, host); err != nil {
		return nil, err
	}
	zr, err := zlib.NewReader(bytes.NewReader(buf))
	if err != nil {
		return nil, corruptf("compressed grain at sector %d: %v", sector, err)
	}
	data := make([]byte, grain)
	n, err := io.ReadFull(zr, data)
	if err != nil && err != io.ErrUnexpectedEOF {
		return nil, corruptf("compressed grain at sector %d: %v", sector, err)
	}
	clear(data[n:])
	return data, nil
}

func (e *sparseExtent) info() ExtentInfo {
	return ExtentInfo{VirtualSize: e.bytes, Filename: e.name, ClusterSize: e.grain, Format: e.extType, Compressed: e.compressed}
}

func (e *sparseExtent) close() error {
	if e.ownsFile {
		return e.file.Close()
	}
	return nil
}

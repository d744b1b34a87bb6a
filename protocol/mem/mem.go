package mem

import (
	"fmt"
	"sync"

	"github.com/thinblk/thinblk/block"
)

// ChunkSize is the allocation unit of a Node in bytes: the granularity of
// BlockStatus, Discard and AllocatedBytes.
const ChunkSize = 64 << 10

// nodeName is how a mem node names itself in errors.
const nodeName = "mem"

// Node is a sparse in-memory disk. See the package documentation.
type Node struct {
	growable bool

	// mu guards everything below. Pread, BlockStatus, Size and Info take it
	// shared; every mutating call takes it exclusively.
	mu   sync.RWMutex
	size int64
	// chunks maps a chunk index (offset / ChunkSize) to its bytes. A chunk
	// absent from the map is deallocated; a present nil value is an
	// anchored zero chunk; otherwise the value has ChunkSize bytes. Bytes at
	// or past size are always zero.
	chunks map[int64][]byte
	closed bool
}

var _ block.Driver = (*Node)(nil)

// New returns an empty node of size bytes that reads as zeros. A negative
// size is treated as 0.
func New(size int64) *Node {
	return &Node{size: max(size, 0), chunks: make(map[int64][]byte)}
}

// NewGrowable is like New, but Pwrite past the end grows the node to end at
// the end of the write (Pread, Discard, WriteZeroes and BlockStatus still stop
// at Size).
func NewGrowable(size int64) *Node {
	n := New(size)
	n.growable = true
	return n
}

func opError(op string, off, n int64, err error) error {
	return &block.OpError{Op: op, Node: nodeName, Off: off, Len: n, Err: err}
}

// checkLocked validates a request against the node.
// Preconditions: mu held (shared or exclusive).
func (m *Node) checkLocked(op string, off, n int64) error {
	if m.closed {
		return opError(op, off, n, block.ErrClosed)
	}
	if err := block.CheckRange(off, n, m.size); err != nil {
		return opError(op, off, n, err)
	}
	return nil
}

// Size returns the current size in bytes.
func (m *Node) Size() int64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.size
}

// Pread fills p from off. Unwritten ranges read as zeros.
func (m *Node) Pread(p []byte, off int64) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if err := m.checkLocked("pread", off, int64(len(p))); err != nil {
		return err
	}
	for len(p) > 0 {
		idx, in := off/ChunkSize, off%ChunkSize
		c := min(int64(len(p)), ChunkSize-in)
		if data := m.chunks[idx]; data != nil {
			copy(p[:c], data[in:])
		} else {
			clear(p[:c])
		}
		p = p[c:]
		off += c
	}
	return nil
}

// Pwrite stores p at off. FUA needs nothing: the node has no volatile cache.
// A growable node grows to off+len(p) when the write ends past Size.
func (m *Node) Pwrite(p []byte, off int64, flags block.Flags) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := int64(len(p))
	if m.growable && !m.closed && off >= 0 && off+n >= off && off+n > m.size {
		m.size = off + n
	}
	if err := m.checkLocked("pwrite", off, n); err != nil {
		return err
	}
	for len(p) > 0 {
		idx, in := off/ChunkSize, off%ChunkSize
		c := min(int64(len(p)), ChunkSize-in)
		data := m.chunks[idx]
		if data == nil {
			data = make([]byte, ChunkSize)
			m.chunks[idx] = data
		}
		copy(data[in:], p[:c])
		p = p[c:]
		off += c
	}
	return nil
}

// Discard frees every chunk that [off, off+n) covers whole and zeroes the
// covered bytes of the others, so the range reads as zeros afterwards.
func (m *Node) Discard(off, n int64, flags block.Flags) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.checkLocked("discard", off, n); err != nil {
		return err
	}
	m.zeroLocked(off, n, true)
	return nil
}

// WriteZeroes makes [off, off+n) read as zeros. It is always native, so
// NoFallback never fails. With MayUnmap it frees chunks as Discard does;
// without it, chunks covered whole become anchored zero chunks, a partly
// covered data chunk has its bytes zeroed, and a partly covered absent chunk
// becomes anchored, so the whole range ends up allocated.
func (m *Node) WriteZeroes(off, n int64, flags block.Flags) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.checkLocked("write-zeroes", off, n); err != nil {
		return err
	}
	m.zeroLocked(off, n, flags.Has(block.MayUnmap))
	return nil
}

// zeroLocked zeroes [off, off+n), freeing whole chunks when unmap is set and
// anchoring them otherwise.
// Preconditions: mu held exclusively; the range is valid.
func (m *Node) zeroLocked(off, n int64, unmap bool) {
	end := off + n
	for off < end {
		idx, in := off/ChunkSize, off%ChunkSize
		chunkEnd := min((idx+1)*ChunkSize, m.size)
		c := min(end, chunkEnd) - off
		data, present := m.chunks[idx]
		switch {
		case in == 0 && off+c == chunkEnd: // the chunk is covered whole
			if unmap {
				delete(m.chunks, idx)
			} else {
				m.chunks[idx] = nil
			}
		case data != nil:
			clear(data[in : in+c])
		case !present && !unmap:
			m.chunks[idx] = nil
		}
		off += c
	}
}

// BlockStatus returns the run of chunks starting at off that share one state
// (Data|Allocated, Zero|Allocated or Zero), clipped to [off, off+n).
// HostOffset is -1: memory has no host file.
func (m *Node) BlockStatus(off, n int64) (block.Extent, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if err := m.checkLocked("block-status", off, n); err != nil {
		return block.Extent{}, err
	}
	if n == 0 {
		return block.Extent{}, opError("block-status", off, n, fmt.Errorf("%w: zero length", block.ErrInvalid))
	}
	end := off + n
	first := m.chunkStatusLocked(off / ChunkSize)
	pos := (off/ChunkSize + 1) * ChunkSize
	for pos < end && m.chunkStatusLocked(pos/ChunkSize) == first {
		pos += ChunkSize
	}
	return block.Extent{Off: off, Len: min(pos, end) - off, Status: first, HostOffset: -1}, nil
}

// chunkStatusLocked returns the status of chunk idx.
// Preconditions: mu held.
func (m *Node) chunkStatusLocked(idx int64) block.Status {
	data, present := m.chunks[idx]
	switch {
	case !present:
		return block.Zero
	case data == nil:
		return block.Zero | block.Allocated
	default:
		return block.Data | block.Allocated
	}
}

// Flush does nothing: there is no volatile cache. It fails only on a closed
// node.
func (m *Node) Flush() error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return opError("flush", 0, 0, block.ErrClosed)
	}
	return nil
}

// Close frees the memory. Every later call fails with block.ErrClosed.
func (m *Node) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.chunks = nil
	return nil
}

// Truncate sets the size to size bytes. Growing adds a range that reads as
// zeros; shrinking frees the chunks past the new end and zeroes the tail of
// the last one, so growing again never resurrects old bytes.
func (m *Node) Truncate(size int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return opError("truncate", size, 0, block.ErrClosed)
	}
	if size < 0 {
		return opError("truncate", size, 0, fmt.Errorf("%w: negative size %d", block.ErrInvalid, size))
	}
	if size < m.size {
		lastIdx := (size + ChunkSize - 1) / ChunkSize // first index wholly past size
		for idx := range m.chunks {
			if idx >= lastIdx {
				delete(m.chunks, idx)
			}
		}
		if in := size % ChunkSize; in != 0 {
			if data := m.chunks[size/ChunkSize]; data != nil {
				clear(data[in:])
			}
		}
	}
	m.size = size
	return nil
}

// Caps: everything is native; Flush has nothing to do.
func (m *Node) Caps() block.Caps {
	return block.Caps{
		Write:         true,
		Flush:         false,
		FUA:           true,
		Discard:       true,
		DiscardZeroes: true,
		WriteZeroes:   true,
		FastZero:      true,
		ZeroUnmap:     true,
		BlockStatus:   true,
	}
}

// Limits: byte-addressable; Discard deallocates whole chunks.
func (m *Node) Limits() block.Limits {
	return block.Limits{
		RequestAlign:       1,
		DiscardGranularity: ChunkSize,
		DiscardAlignment:   ChunkSize,
	}
}

// Info reports the chunks in use (data and anchored) as AllocatedBytes and
// the end of the highest one, clipped to Size, as Watermark (0 when none).
func (m *Node) Info() (block.Info, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return block.Info{}, opError("info", 0, 0, block.ErrClosed)
	}
	var watermark int64
	for idx := range m.chunks {
		watermark = max(watermark, min((idx+1)*ChunkSize, m.size))
	}
	return block.Info{
		Format:               "mem",
		VirtualSize:          m.size,
		AllocatedBytes:       int64(len(m.chunks)) * ChunkSize,
		Watermark:            watermark,
		UnallocatedReadsZero: true,
		ZeroUnmapDeallocates: true,
	}, nil
}

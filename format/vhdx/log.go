package vhdx

import (
	"encoding/binary"
	"fmt"

	"github.com/thinblk/thinblk/block"
)

// Log layout ([MS-VHDX] 2.3). All fields little-endian.
const (
	logSector        = 4096
	logHeaderSize    = 64
	logDescSize      = 32
	logEntrySig      = "loge"
	logDataDescSig   = "desc"
	logZeroDescSig   = "zero"
	logDataSectorSig = "data"
	// maxReplayLog bounds the log thinblk replays (in memory).
	maxReplayLog = 64 << 20
)

// logWrite is one replayed write: data (4 KiB) or zeros of length n at off.
type logWrite struct {
	off  int64
	n    int64
	data []byte // nil for zeros
}

// logEntry is a validated log entry.
type logEntry struct {
	pos    int64 // offset in the log
	length int64
	tail   int64
	seq    uint64
	writes []logWrite
}

// readLog reads the log region named by h, bounded by the file size.
func readLog(file block.Driver, h *Header) ([]byte, error) {
	off, n := int64(h.LogOffset), int64(h.LogLength)
	if off%mib != 0 || n%mib != 0 || n == 0 || off < mib {
		return nil, fmt.Errorf("vhdx: %w: log at %d length %d is not MiB aligned past the first MiB", block.ErrCorrupt, off, n)
	}
	if n > maxReplayLog {
		return nil, fmt.Errorf("vhdx: %w: log of %d bytes is over the %d bytes thinblk replays", block.ErrNotSupported, n, maxReplayLog)
	}
	if off > file.Size() || n > file.Size()-off {
		return nil, fmt.Errorf("vhdx: %w: log at %d length %d does not fit a file of %d bytes", block.ErrCorrupt, off, n, file.Size())
	}
	b := make([]byte, n)
	return b, file.Pread(b, off)
}

// wrapped returns n bytes of the circular log starting at pos.
func wrapped(log []byte, pos, n int64) []byte {
	size := int64(len(log))
	out := make([]byte, n)
	for i := int64(0); i < n; {
		p := (pos + i) % size
		c := copy(out[i:], log[p:])
		i += int64(c)
	}
	return out
}

// parseLogEntry validates the entry at pos (a sector boundary) of the log
// written under logGUID, or returns nil.
func parseLogEntry(log []byte, pos int64, logGUID GUID) *logEntry {
	size := int64(len(log))
	hdr := wrapped(log, pos, logHeaderSize)
	if string(hdr[:4]) != logEntrySig {
		return nil
	}
	length := int64(binary.LittleEndian.Uint32(hdr[8:]))
	tail := int64(binary.LittleEndian.Uint32(hdr[12:]))
	seq := binary.LittleEndian.Uint64(hdr[16:])
	descCount := int64(binary.LittleEndian.Uint32(hdr[24:]))
	var g GUID
	copy(g[:], hdr[32:])
	if g != logGUID || length == 0 || length%logSector != 0 || length > size || tail%logSector != 0 || tail >= size || seq == 0 {
		return nil
	}
	descSectors := (logHeaderSize + logDescSize*descCount + logSector - 1) / logSector
	if descSectors*logSector > length {
		return nil
	}
	entry := wrapped(log, pos, length)
	if binary.LittleEndian.Uint32(entry[4:]) != crcWithout(entry, 4) {
		return nil
	}
	e := &logEntry{pos: pos, length: length, tail: tail, seq: seq}
	dataSector := descSectors
	for i := int64(0); i < descCount; i++ {
		d := entry[logHeaderSize+logDescSize*i:]
		fileOff := int64(binary.LittleEndian.Uint64(d[16:]))
		if binary.LittleEndian.Uint64(d[24:]) != seq || fileOff < 0 || fileOff%logSector != 0 {
			return nil
		}
		switch string(d[:4]) {
		case logZeroDescSig:
			n := int64(binary.LittleEndian.Uint64(d[8:]))
			if n <= 0 || n%logSector != 0 || n > 1<<46 || fileOff > 1<<50 {
				return nil
			}
			e.writes = append(e.writes, logWrite{off: fileOff, n: n})
		case logDataDescSig:
			if (dataSector+1)*logSector > length || fileOff > 1<<50 {
				return nil
			}
			s := entry[dataSector*logSector : (dataSector+1)*logSector]
			dataSector++
			if string(s[:4]) != logDataSectorSig || binary.LittleEndian.Uint32(s[4:]) != uint32(seq>>32) || binary.LittleEndian.Uint32(s[4092:]) != uint32(seq) {
				return nil
			}
			page := make([]byte, logSector)
			copy(page[:8], d[8:16]) // LeadingBytes
			copy(page[8:4092], s[8:4092])
			copy(page[4092:], d[4:8]) // TrailingBytes
			e.writes = append(e.writes, logWrite{off: fileOff, n: logSector, data: page})
		default:
			return nil
		}
	}
	if dataSector*logSector != length {
		return nil
	}
	return e
}

// replayLog finds the active sequence of the log ([MS-VHDX] 2.3.3): the
// valid entry with the highest sequence number whose tail starts a chain
// of valid entries with consecutive sequence numbers ending at it. It
// returns that sequence's writes in order.
func replayLog(file block.Driver, h *Header) ([]logWrite, error) {
	log, err := readLog(file, h)
	if err != nil {
		return nil, err
	}
	size := int64(len(log))
	entries := map[int64]*logEntry{}
	var heads []*logEntry
	for pos := int64(0); pos < size; pos += logSector {
		if e := parseLogEntry(log, pos, h.LogGUID); e != nil {
			entries[pos] = e
			heads = append(heads, e)
		}
	}
	var best []*logEntry
	for _, head := range heads {
		if best != nil && head.seq <= best[len(best)-1].seq {
			continue
		}
		// Walk from the head's tail to the head.
		var chain []*logEntry
		pos := head.tail
		for steps := int64(0); steps <= size/logSector; steps++ {
			e := entries[pos]
			if e == nil || (len(chain) > 0 && e.seq != chain[len(chain)-1].seq+1) {
				chain = nil
				break
			}
			chain = append(chain, e)
			if e == head {
				break
			}
			pos = (pos + e.length) % size
		}
		if len(chain) > 0 && chain[len(chain)-1] == head {
			best = chain
		}
	}
	if best == nil {
		return nil, fmt.Errorf("vhdx: %w: the header names a log (LogGuid %s) but no valid log sequence was found", block.ErrCorrupt, h.LogGUID)
	}
	var writes []logWrite
	for _, e := range best {
		writes = append(writes, e.writes...)
	}
	return writes, nil
}

// replayedFile is a read-only view of a file with a replayed log applied
// over it (in memory; the file is never written).
type replayedFile struct {
	block.Driver
	writes []logWrite
	size   int64
}

func newReplayedFile(file block.Driver, writes []logWrite) *replayedFile {
	r := &replayedFile{Driver: file, writes: writes, size: file.Size()}
	for _, w := range writes {
		r.size = max(r.size, w.off+w.n)
	}
	return r
}

// Size is the file's size, or more when the log writes past its end.
func (r *replayedFile) Size() int64 { return r.size }

// Unwrap returns the file node.
func (r *replayedFile) Unwrap() block.Driver { return r.Driver }

// Pread reads the file (zeros past its end) and applies the log's writes
// in order.
func (r *replayedFile) Pread(p []byte, off int64) error {
	if err := block.CheckRange(off, int64(len(p)), r.size); err != nil {
		return err
	}
	fs := r.Driver.Size()
	if off < fs {
		n := min(int64(len(p)), fs-off)
		if err := r.Driver.Pread(p[:n], off); err != nil {
			return err
		}
		clear(p[n:])
	} else {
		clear(p)
	}
	end := off + int64(len(p))
	for _, w := range r.writes {
		lo, hi := max(off, w.off), min(end, w.off+w.n)
		if lo >= hi {
			continue
		}
		if w.data == nil {
			clear(p[lo-off : hi-off])
		} else {
			copy(p[lo-off:hi-off], w.data[lo-w.off:hi-w.off])
		}
	}
	return nil
}

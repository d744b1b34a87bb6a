package vmdk

import (
	"fmt"

	"github.com/thinblk/thinblk/block"
)

// extent is one piece of the virtual disk. Offsets are relative to the
// extent's start; callers keep requests inside [0, size()).
type extent interface {
	size() int64
	// status returns the run at off (0 < Len <= n) relative to the extent,
	// HostOffset in the extent's file or -1.
	status(off, n int64) (block.Extent, error)
	// readData fills p from a run that status reported as Data.
	readData(p []byte, off int64) error
	// info describes the extent for `info`.
	info() ExtentInfo
	close() error
}

// flatExtent maps [0, bytes) to [offset, offset+bytes) of file.
type flatExtent struct {
	file     block.Driver
	ownsFile bool
	name     string
	offset   int64
	bytes    int64
}

func newFlatExtent(file block.Driver, owns bool, name string, offset, bytes int64) (*flatExtent, error) {
	if offset > file.Size() || bytes > file.Size()-offset {
		return nil, corruptf("flat extent %q of %d bytes at offset %d does not fit its file of %d bytes", name, bytes, offset, file.Size())
	}
	return &flatExtent{file: file, ownsFile: owns, name: name, offset: offset, bytes: bytes}, nil
}

func (e *flatExtent) size() int64 { return e.bytes }

// status is the file's status, moved into the extent: a hole in the flat
// file reads as zeros.
func (e *flatExtent) status(off, n int64) (block.Extent, error) {
	fe, err := e.file.BlockStatus(e.offset+off, n)
	if err != nil {
		return block.Extent{}, err
	}
	if fe.Off != e.offset+off || fe.Len <= 0 || fe.Len > n {
		return block.Extent{}, fmt.Errorf("vmdk: %w: file node answered run %d+%d for %d+%d", block.ErrCorrupt, fe.Off, fe.Len, e.offset+off, n)
	}
	st := fe.Status
	if !st.Present() {
		st |= block.Data // a file without block status: its bytes are the data
	}
	return block.Extent{Off: off, Len: fe.Len, Status: st, HostOffset: e.offset + off}, nil
}

func (e *flatExtent) readData(p []byte, off int64) error { return e.file.Pread(p, e.offset+off) }

func (e *flatExtent) info() ExtentInfo {
	return ExtentInfo{VirtualSize: e.bytes, Filename: e.name, Format: "FLAT"}
}

func (e *flatExtent) close() error {
	if e.ownsFile {
		return e.file.Close()
	}
	return nil
}

// zeroExtent reads as zeros and has no file.
type zeroExtent struct{ bytes int64 }

func (e zeroExtent) size() int64 { return e.bytes }
func (e zeroExtent) status(off, n int64) (block.Extent, error) {
	return block.Extent{Off: off, Len: n, Status: block.Zero, HostOffset: -1}, nil
}
func (e zeroExtent) readData(p []byte, off int64) error {
	clear(p)
	return nil
}
func (e zeroExtent) info() ExtentInfo { return ExtentInfo{VirtualSize: e.bytes, Format: "ZERO"} }
func (e zeroExtent) close() error     { return nil }

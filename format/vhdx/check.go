package vhdx

import (
	"cmp"
	"crypto/rand"
	"fmt"
	"math"
	"slices"

	"github.com/thinblk/thinblk/block"
)

// headerSectionEnd is the end of the header section (file identifier,
// headers, region tables): the first 1 MiB of the file.
const headerSectionEnd = 1 << 20

// Check verifies the BAT against the file, as qemu-img check does for
// VHDX, and one thing more. It returns one line per problem ("ERROR: ..."),
// each a corruption:
//
//   - a present block (payload FULLY_PRESENT or PARTIALLY_PRESENT, sector
//     bitmap PRESENT) whose offset overflows, that starts at or past the
//     end of the file, or that ends past it (for the last payload block,
//     only its part inside the virtual disk counts), as qemu ("VHDX BAT
//     entry 2 start offset 104857600 points after end of file (11534336).
//     Image has probably been truncated.");
//   - a present block that overlaps the header section (the first 1 MiB),
//     the log, the BAT or the metadata region, as qemu;
//   - two present blocks that overlap each other (a write to one changes
//     the other). qemu-img does not check this.
//
// A log that needs a replay is not Check's business: opening such an
// image fails before Check can run (read-only with -o replay-log=on it is
// checked as replayed in memory). qemu replays the log whenever it opens an
// image read-write and counts that as a repaired corruption; thinblk's
// check -r does the same with [ReplayLog] before it opens the image. Check
// itself repairs nothing, with or without repair, and repaired is always
// 0. It takes the BAT's read lock; it may run concurrently with I/O.
func (img *Image) Check(repair bool) (problems []string, repaired int, err error) {
	batRegion, metaRegion, err := readRegions(img.file)
	if err != nil {
		return nil, 0, err
	}
	fileSize := img.file.Size()
	type area struct {
		start, end int64
		name       string
	}
	fixed := []area{
		{0, headerSectionEnd, "the header section"},
		{int64(img.header.LogOffset), int64(img.header.LogOffset) + int64(img.header.LogLength), "the log"},
		{int64(batRegion.Offset), int64(batRegion.Offset) + int64(batRegion.Length), "the BAT region"},
		{int64(metaRegion.Offset), int64(metaRegion.Offset) + int64(metaRegion.Length), "the metadata region"},
	}
	type used struct {
		start, end int64
		index      int64
	}
	var blocks []used
	g := img.geo
	img.batMu.RLock()
	defer img.batMu.RUnlock()
	for i, e := range img.bat {
		idx := int64(i)
		var length int64
		if idx%(g.chunkRatio+1) == g.chunkRatio { // a sector bitmap entry
			if entryState(e) != bitmapPresent {
				continue
			}
			length = bitmapBlock
		} else {
			if s := entryState(e); s != payloadFullyPresent && s != payloadPartiallyPresent {
				continue
			}
			payload := idx - idx/(g.chunkRatio+1)
			length = min(g.blockSize, img.size-payload*g.blockSize)
			if length <= 0 {
				length = g.blockSize // an entry past the disk (odd BAT); check it whole
			}
		}
		start := entryOffset(e)
		switch {
		case start < 0 || start > math.MaxInt64-length:
			problems = append(problems, fmt.Sprintf("ERROR: VHDX BAT entry %d offset overflow.", idx))
			continue
		case start >= fileSize:
			problems = append(problems, fmt.Sprintf("ERROR: VHDX BAT entry %d start offset %d points after end of file (%d). Image has probably been truncated.", idx, start, fileSize))
			continue
		case start+length > fileSize:
			problems = append(problems, fmt.Sprintf("ERROR: VHDX BAT entry %d end offset %d points after end of file (%d). Image has probably been truncated.", idx, start+length-1, fileSize))
		}
		for _, a := range fixed {
			if start < a.end && a.start < start+length {
				problems = append(problems, fmt.Sprintf("ERROR: VHDX BAT entry %d: block %d-%d overlaps %s (%d-%d)", idx, start, start+length, a.name, a.start, a.end))
			}
		}
		blocks = append(blocks, used{start, start + length, idx})
	}
	slices.SortFunc(blocks, func(a, b used) int { return cmp.Compare(a.start, b.start) })
	// Report each block that overlaps one before it in file order: the
	// furthest-reaching earlier block is the one to compare with.
	var reach used
	for k, b := range blocks {
		if k > 0 && b.start < reach.end {
			problems = append(problems, fmt.Sprintf("ERROR: VHDX BAT entry %d: block %d-%d overlaps the block of BAT entry %d (%d-%d)", b.index, b.start, b.end, reach.index, reach.start, reach.end))
		}
		if k == 0 || b.end > reach.end {
			reach = b
		}
	}
	return problems, 0, nil
}

// ReplayLog writes the log of the VHDX image in file into the file, as qemu
// does whenever it opens such an image read-write (qemu-img check -r leaks
// and -r all both replay it, and count the replay as one repaired
// corruption). It reports whether the image had a log to replay.
//
// The writes of the log's active sequence (see [Image] open with
// replay-log=on, which applies the same writes in memory) are written in
// place, growing the file where they reach past its end, and flushed; then
// both headers are rewritten, each with the next sequence number, a new
// FileWriteGuid and no LogGuid, the older slot first, each flushed. A crash
// before the headers are written leaves the log in place, to be replayed
// again (replaying is idempotent); a crash between the two header writes
// leaves a current header without a log. file must be writable and not
// open as an Image; nothing else may use it meanwhile. On error the file
// may hold part of the replay and still name the log.
func ReplayLog(file block.Driver) (replayed bool, err error) {
	h, hOff, err := readHeaders(file)
	if err != nil {
		return false, err
	}
	if h.LogGUID.IsZero() {
		return false, nil
	}
	writes, err := replayLog(file, h)
	if err != nil {
		return false, err
	}
	for _, w := range writes {
		if end := w.off + w.n; end > file.Size() {
			// Grow the file over the write (the gap reads as zeros).
			if err := file.Pwrite(block.ZeroBuffer(logSector), end-logSector, 0); err != nil {
				return false, fmt.Errorf("vhdx: log replay: %w", err)
			}
		}
		if w.data != nil {
			err = file.Pwrite(w.data, w.off, 0)
		} else {
			err = block.ZeroRange(file, w.off, w.n, 0)
		}
		if err != nil {
			return false, fmt.Errorf("vhdx: log replay: %w", err)
		}
	}
	if err := file.Flush(); err != nil {
		return false, fmt.Errorf("vhdx: log replay: %w", err)
	}
	nh := *h
	nh.LogGUID = GUID{}
	if _, err := rand.Read(nh.FileWriteGUID[:]); err != nil {
		return false, err
	}
	target := int64(header1Offset)
	if hOff == header1Offset {
		target = header2Offset
	}
	for range 2 {
		nh.SequenceNumber++
		if err := file.Pwrite(nh.encode(), target, 0); err != nil {
			return false, fmt.Errorf("vhdx: log replay: header: %w", err)
		}
		if err := file.Flush(); err != nil {
			return false, fmt.Errorf("vhdx: log replay: header: %w", err)
		}
		target = header1Offset + header2Offset - target
	}
	return true, nil
}

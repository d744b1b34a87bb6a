package vmdk

import (
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/thinblk/thinblk/block"
)

// Check verifies the grain tables of every sparse extent, as qemu-img check
// does for VMDK, and one thing more. It returns one line per problem
// ("ERROR: ..."):
//
//   - a grain table entry whose grain starts at or past the end of its
//     extent file ("cluster offset for sector N points after EOF", qemu's
//     words, N the disk sector of the grain), or, for an uncompressed
//     grain, ends past it (qemu does not check the end; thinblk's reads of
//     such a grain fail). qemu-img stops at the first such grain and
//     reports "Check failed: Invalid argument" (exit 1, no summary); Check
//     lists every one and then returns an error wrapping block.ErrCorrupt,
//     so that the caller can fail the same way;
//   - two grain table entries whose grains overlap in the file (a write
//     to one would change the other). qemu-img does not check this; these
//     problems are corruptions, and come with a nil error.
//
// Grain directory entries outside the file are refused when the image is
// opened, before Check can run. Flat and zero extents have nothing to
// check: a flat extent that does not fit its file is refused at open too.
// Check reads the grain tables through the extent's table cache; it may run
// while nothing writes to the image. VMDK has no repair (qemu-img check -r
// fails with "This image format does not support checks" too): with repair
// set, Check returns an error wrapping block.ErrNotSupported and checks
// nothing. repaired is always 0.
func (img *Image) Check(repair bool) (problems []string, repaired int, err error) {
	if repair {
		return nil, 0, fmt.Errorf("vmdk: repair (-r): %w (qemu-img cannot repair vmdk images either)", block.ErrNotSupported)
	}
	pastEOF := 0
	for i, ext := range img.extents {
		se, ok := ext.(*sparseExtent)
		if !ok {
			continue
		}
		p, n, err := se.check(img.starts[i])
		problems = append(problems, p...)
		pastEOF += n
		if err != nil {
			return problems, 0, err
		}
	}
	if pastEOF > 0 {
		return problems, 0, fmt.Errorf("vmdk: %w: %d grain(s) point past the end of their extent file", block.ErrCorrupt, pastEOF)
	}
	return problems, 0, nil
}

// usedGrain is one allocated grain seen by a check.
type usedGrain struct {
	sector uint32 // grain table entry: the grain's (or its marker's) sector
	disk   int64  // disk offset of the grain
}

// check walks the grain tables of e, which starts at disk offset start.
// It returns the problem lines and how many of them are grains past the
// end of the file.
func (e *sparseExtent) check(start int64) (problems []string, pastEOF int, err error) {
	fileSize := e.file.Size() // the file grows when the image is writable
	grainSectors := e.grain / sectorSize
	var used []usedGrain
	for gdIndex, gtSector := range e.gd {
		if gtSector == 0 {
			continue
		}
		gt, err := e.table(gtSector)
		if err != nil {
			return problems, pastEOF, err
		}
		for j := range gt {
			off := int64(gdIndex)*e.gtSize + int64(j)*e.grain // offset in the extent
			if off >= e.bytes {
				break
			}
			gte := atomic.LoadUint32(&gt[j])
			if gte == gteUnallocated || gte == gteZeroed {
				continue
			}
			diskSector := (start + off) / sectorSize
			host := int64(gte) * sectorSize
			where := fmt.Sprintf("grain table %d entry %d of %s: sector %d, file of %d bytes", gdIndex, j, e.name, gte, fileSize)
			switch {
			case host >= fileSize:
				problems = append(problems, fmt.Sprintf("ERROR: cluster offset for sector %d points after EOF (%s)", diskSector, where))
				pastEOF++
				continue
			case !e.compressed && host+e.grain > fileSize:
				problems = append(problems, fmt.Sprintf("ERROR: cluster for sector %d runs past EOF (%s)", diskSector, where))
				pastEOF++
				continue
			}
			used = append(used, usedGrain{sector: gte, disk: start + off})
		}
	}
	// Overlaps: sort by host sector; an uncompressed grain covers
	// grainSectors sectors, a compressed one at least its first sector.
	slices.SortFunc(used, func(a, b usedGrain) int { return int(int64(a.sector) - int64(b.sector)) })
	span := int64(1)
	if !e.compressed {
		span = grainSectors
	}
	for k := 1; k < len(used); k++ {
		prev, cur := used[k-1], used[k]
		if int64(cur.sector) < int64(prev.sector)+span {
			problems = append(problems, fmt.Sprintf("ERROR: cluster for sector %d (file sector %d) overlaps the cluster for sector %d (file sector %d) in %s",
				cur.disk/sectorSize, cur.sector, prev.disk/sectorSize, prev.sector, e.name))
		}
	}
	return problems, pastEOF, nil
}

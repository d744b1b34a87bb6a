package vmdk

import (
	"strconv"
	"strings"
)

// Descriptor is the parsed text descriptor of a disk: its identity, type,
// parent link and extents.
type Descriptor struct {
	Version            int
	CID                uint32
	ParentCID          uint32
	CreateType         string
	ParentFileNameHint string
	Extents            []ExtentLine
	// DDB holds the disk database entries ("ddb.adapterType" → "ide").
	DDB map[string]string
}

// ExtentLine is one line of the extent description: access, size in
// sectors, type, file name and (FLAT) offset in sectors of the extent in
// its file.
type ExtentLine struct {
	Access   string // RW, RDONLY, NOACCESS
	Sectors  int64
	Type     string // FLAT, SPARSE, ZERO, VMFS, VMFSSPARSE, VMFSRDM, VMFSRAW, SESPARSE
	FileName string
	Offset   int64
}

// maxExtents bounds the extents of one descriptor (a 2 TiB
// twoGbMaxExtent disk has 1024).
const maxExtents = 4096

// parseDescriptor parses descriptor text. Unknown keys are kept in DDB
// when they start with "ddb." and ignored otherwise; malformed extent lines
// are errors.
func parseDescriptor(text string) (*Descriptor, error) {
	d := &Descriptor{CID: 0xffffffff, ParentCID: 0xffffffff, DDB: map[string]string{}}
	for lineNo, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(strings.TrimRight(line, "\r\x00"))
		if line == "" || line[0] == '#' {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok && !isAccess(firstWord(line)) {
			k = strings.TrimSpace(k)
			v = unquote(strings.TrimSpace(v))
			switch {
			case k == "version":
				d.Version, _ = strconv.Atoi(v)
			case k == "CID":
				d.CID = parseCID(v)
			case k == "parentCID":
				d.ParentCID = parseCID(v)
			case k == "createType":
				d.CreateType = v
			case k == "parentFileNameHint":
				d.ParentFileNameHint = v
			case strings.HasPrefix(k, "ddb."):
				if len(d.DDB) < 256 {
					d.DDB[k] = v
				}
			}
			continue
		}
		if !isAccess(firstWord(line)) {
			continue // text qemu also skips
		}
		e, err := parseExtentLine(line)
		if err != nil {
			return nil, corruptf("descriptor line %d %q: %v", lineNo+1, line, err)
		}
		if len(d.Extents) >= maxExtents {
			return nil, corruptf("descriptor has more than %d extents", maxExtents)
		}
		d.Extents = append(d.Extents, e)
	}
	return d, nil
}

func firstWord(s string) string {
	if i := strings.IndexAny(s, " \t"); i >= 0 {
		return s[:i]
	}
	return s
}

func isAccess(w string) bool { return w == "RW" || w == "RDONLY" || w == "NOACCESS" }

func unquote(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return s[1 : len(s)-1]
	}
	return s
}

func parseCID(s string) uint32 {
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		return 0xffffffff
	}
	return uint32(v)
}

// parseExtentLine parses `ACCESS SECTORS TYPE ["FILE" [OFFSET]]`; the file
// name is quoted and may contain spaces.
func parseExtentLine(line string) (ExtentLine, error) {
	var e ExtentLine
	rest := line
	next := func() string {
		rest = strings.TrimLeft(rest, " \t")
		i := strings.IndexAny(rest, " \t")
		if i < 0 {
			w := rest
			rest = ""
			return w
		}
		w := rest[:i]
		rest = rest[i:]
		return w
	}
	e.Access = next()
	sectors, err := strconv.ParseInt(next(), 10, 64)
	if err != nil || sectors < 0 || sectors > maxCapacitySector {
		return e, strErr("bad extent size")
	}
	e.Sectors = sectors
	e.Type = next()
	switch e.Type {
	case "FLAT", "SPARSE", "ZERO", "VMFS", "VMFSSPARSE", "VMFSRDM", "VMFSRAW", "SESPARSE":
	default:
		return e, strErr("unknown extent type " + strconv.Quote(e.Type))
	}
	rest = strings.TrimLeft(rest, " \t")
	if e.Type == "ZERO" && rest == "" {
		return e, nil
	}
	if len(rest) < 2 || rest[0] != '"' {
		return e, strErr("extent file name is not quoted")
	}
	end := strings.IndexByte(rest[1:], '"')
	if end < 0 {
		return e, strErr("unterminated extent file name")
	}
	e.FileName = rest[1 : 1+end]
	rest = strings.TrimSpace(rest[2+end:])
	if e.FileName == "" {
		return e, strErr("empty extent file name")
	}
	if rest != "" {
		off, err := strconv.ParseInt(firstWord(rest), 10, 64)
		if err != nil || off < 0 || off > maxCapacitySector {
			return e, strErr("bad extent offset")
		}
		e.Offset = off
	}
	return e, nil
}

type strErr string

func (e strErr) Error() string { return string(e) }

package vpc

import (
	"fmt"
	"strconv"
	"strings"
)

// Specific is the VHD part of `info`. qemu-img reports no format-specific
// data for vpc, so every field is thinblk's own; the JSON names follow
// qemu's style.
type Specific struct {
	Subformat  string `json:"subformat"`            // fixed, dynamic or differencing
	Creator    string `json:"creator"`              // creator application, e.g. "qem2", "win "
	BlockSize  int64  `json:"block-size,omitempty"` // dynamic images
	Cylinders  int    `json:"cylinders"`
	Heads      int    `json:"heads"`
	Sectors    int    `json:"sectors-per-track"`
	SizeFrom   string `json:"size-from"` // "chs" or "current-size"
	ParentName string `json:"parent,omitempty"`
}

// Specific returns the image's format-specific information.
func (img *Image) Specific() *Specific {
	f := img.footer
	s := &Specific{
		Subformat: img.Subformat(),
		Creator:   strings.TrimRight(string(f.CreatorApp[:]), "\x00"),
		BlockSize: img.blockSize,
		Cylinders: int(f.Cylinders),
		Heads:     int(f.Heads),
		Sectors:   int(f.SectorsPerCyl),
		SizeFrom:  "current-size",
	}
	if img.size == f.chsSize() && img.size != int64(f.CurrentSize) {
		s.SizeFrom = "chs"
	}
	s.ParentName = img.parentName
	return s
}

// HumanFields returns the "Format specific information" lines of `info`.
func (s *Specific) HumanFields() [][2]string {
	f := [][2]string{
		{"subformat", s.Subformat},
		{"creator", strconv.Quote(s.Creator)},
		{"geometry (CHS)", fmt.Sprintf("%d/%d/%d", s.Cylinders, s.Heads, s.Sectors)},
		{"size from", s.SizeFrom},
	}
	if s.BlockSize > 0 {
		f = append(f, [2]string{"block size", strconv.FormatInt(s.BlockSize, 10)})
	}
	if s.ParentName != "" {
		f = append(f, [2]string{"parent", s.ParentName})
	}
	return f
}

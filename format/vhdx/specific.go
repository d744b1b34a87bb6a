package vhdx

import (
	"strconv"
)

// Specific is the VHDX part of `info`. qemu-img reports no format-specific
// data for vhdx, so every field is thinblk's own, in qemu's JSON style.
type Specific struct {
	Subformat          string `json:"subformat"` // dynamic, fixed or differencing
	BlockSize          int64  `json:"block-size"`
	LogicalSectorSize  int64  `json:"logical-sector-size"`
	PhysicalSectorSize int64  `json:"physical-sector-size"`
	Log                string `json:"log,omitempty"` // "replayed in memory" or "dirty, not replayed"
	Parent             string `json:"parent,omitempty"`
	ParentLinkage      string `json:"parent-linkage,omitempty"`
}

// Specific returns the image's format-specific information.
func (img *Image) Specific() *Specific {
	s := &Specific{
		Subformat:          img.Subformat(),
		BlockSize:          img.geo.blockSize,
		LogicalSectorSize:  int64(img.meta.LogicalSectorSize),
		PhysicalSectorSize: int64(img.meta.PhysicalSectorSize),
		Log:                img.logState,
		Parent:             img.parentName,
	}
	if img.meta.ParentLocator != nil {
		s.ParentLinkage = img.meta.ParentLocator["parent_linkage"]
		if s.Parent == "" {
			if p := img.parentPaths(); len(p) > 0 {
				s.Parent = p[0]
			}
		}
	}
	return s
}

// HumanFields returns the "Format specific information" lines of `info`.
func (s *Specific) HumanFields() [][2]string {
	f := [][2]string{
		{"subformat", s.Subformat},
		{"block size", strconv.FormatInt(s.BlockSize, 10)},
		{"logical sector size", strconv.FormatInt(s.LogicalSectorSize, 10)},
		{"physical sector size", strconv.FormatInt(s.PhysicalSectorSize, 10)},
	}
	if s.Log != "" {
		f = append(f, [2]string{"log", s.Log})
	}
	if s.Parent != "" {
		f = append(f, [2]string{"parent", s.Parent})
	}
	if s.ParentLinkage != "" {
		f = append(f, [2]string{"parent linkage", s.ParentLinkage})
	}
	return f
}

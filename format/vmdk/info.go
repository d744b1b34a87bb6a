package vmdk

import (
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/thinblk/thinblk/block"
)

// Specific is the vmdk part of Info, with qemu-img info's JSON names.
type Specific struct {
	CID        uint32       `json:"cid"`
	ParentCID  uint32       `json:"parent-cid"`
	CreateType string       `json:"create-type"`
	Extents    []ExtentInfo `json:"extents"`
	Parent     string       `json:"-"`
}

// ExtentInfo describes one extent, with qemu-img info's JSON names.
type ExtentInfo struct {
	VirtualSize int64  `json:"virtual-size"`
	Filename    string `json:"filename,omitempty"`
	ClusterSize int64  `json:"cluster-size,omitempty"`
	Format      string `json:"format"`
	Compressed  bool   `json:"compressed,omitempty"`
}

// HumanFields returns qemu-img info's "Format specific information" lines.
func (s *Specific) HumanFields() [][2]string {
	f := [][2]string{
		{"cid", strconv.FormatUint(uint64(s.CID), 10)},
		{"parent cid", strconv.FormatUint(uint64(s.ParentCID), 10)},
		{"create type", s.CreateType},
	}
	if s.Parent != "" {
		f = append(f, [2]string{"parent", s.Parent})
	}
	for i, e := range s.Extents {
		v := fmt.Sprintf("%s, virtual size %d", e.Filename, e.VirtualSize)
		if e.Format != "" {
			v += ", format " + e.Format
		}
		if e.ClusterSize > 0 {
			v += fmt.Sprintf(", cluster size %d", e.ClusterSize)
		}
		if e.Compressed {
			v += ", compressed"
		}
		f = append(f, [2]string{fmt.Sprintf("extent [%d]", i), v})
	}
	return f
}

// Info describes the disk: host allocation summed over its files, the
// watermark of a single-file disk, and the descriptor's identity.
func (img *Image) Info() (block.Info, error) {
	sp := &Specific{CID: img.desc.CID, ParentCID: img.desc.ParentCID, CreateType: img.desc.CreateType, Parent: img.desc.ParentFileNameHint}
	in := block.Info{
		Format:               "vmdk",
		VirtualSize:          img.size,
		AllocatedBytes:       0,
		Watermark:            -1,
		UnallocatedReadsZero: img.parent == nil,
		Specific:             sp,
	}
	fi, err := img.file.Info()
	if err != nil {
		return block.Info{}, err
	}
	in.AllocatedBytes = fi.AllocatedBytes
	if len(img.extents) == 1 {
		if se, ok := img.extents[0].(*sparseExtent); ok && !se.ownsFile {
			in.Watermark = fi.Watermark
		}
	}
	for _, e := range img.extents {
		x := e.info()
		if x.Filename != "" {
			x.Filename = filepath.Clean(x.Filename)
		}
		sp.Extents = append(sp.Extents, x)
		var ef block.Driver
		switch e := e.(type) {
		case *sparseExtent:
			if e.ownsFile {
				ef = e.file
			}
		case *flatExtent:
			ef = e.file
		}
		if ef != nil && in.AllocatedBytes >= 0 {
			xi, err := ef.Info()
			if err != nil || xi.AllocatedBytes < 0 {
				in.AllocatedBytes = -1
			} else {
				in.AllocatedBytes += xi.AllocatedBytes
			}
		}
	}
	return in, nil
}

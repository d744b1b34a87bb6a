package vdi

import (
	"fmt"
	"strconv"

	"github.com/thinblk/thinblk/block"
)

// Specific is the vdi part of Info. qemu-img info has no format-specific
// data for vdi; these are thinblk's names.
type Specific struct {
	ImageType       string `json:"image-type"`
	BlockSize       int64  `json:"block-size"`
	BlocksInImage   uint32 `json:"blocks"`
	BlocksAllocated uint32 `json:"blocks-allocated"`
	UUID            string `json:"uuid"`
}

// HumanFields returns the "Format specific information" lines.
func (s *Specific) HumanFields() [][2]string {
	return [][2]string{
		{"image type", s.ImageType},
		{"block size", strconv.FormatInt(s.BlockSize, 10)},
		{"blocks", strconv.FormatUint(uint64(s.BlocksInImage), 10)},
		{"blocks allocated", strconv.FormatUint(uint64(s.BlocksAllocated), 10)},
		{"uuid", s.UUID},
	}
}

// Info describes the image.
func (img *Image) Info() (block.Info, error) {
	fi, err := img.file.Info()
	if err != nil {
		return block.Info{}, err
	}
	img.allocMu.Lock()
	allocated := img.hdr.BlocksAllocated
	img.allocMu.Unlock()
	t := "dynamic"
	if img.hdr.ImageType == typeStatic {
		t = "static"
	}
	// VirtualBox stores the first three UUID fields little-endian.
	u := img.hdr.UUIDImage
	u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7] = u[3], u[2], u[1], u[0], u[5], u[4], u[7], u[6]
	return block.Info{
		Format:               "vdi",
		VirtualSize:          img.size,
		AllocatedBytes:       fi.AllocatedBytes,
		Watermark:            fi.Watermark,
		UnallocatedReadsZero: true,
		Specific: &Specific{ImageType: t, BlockSize: img.block, BlocksInImage: img.hdr.BlocksInImage, BlocksAllocated: allocated,
			UUID: fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])},
	}, nil
}

package vdi

import (
	"fmt"
	"strconv"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/protocol/file"
)

// Create makes a VDI of o.Size bytes (rounded up to a sector) called
// name, with qemu-img's creation options: "static" (on/off, default off:
// dynamic) and "block_size" (default 1 MiB; VirtualBox and qemu only read
// 1 MiB blocks). A static image has every block mapped in order and its
// data area allocated as a sparse file.
func Create(name string, o image.CreateOptions) error {
	if o.Backing != "" {
		return fmt.Errorf("vdi: %w: a vdi image has no backing file", block.ErrNotSupported)
	}
	static := false
	blockSize := int64(DefaultBlockSize)
	for k, v := range o.Options {
		switch k {
		case "static":
			b, err := parseBool(v)
			if err != nil {
				return fmt.Errorf("vdi: %w: option static=%q: %v", block.ErrInvalid, v, err)
			}
			static = b
		case "block_size":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < sectorSize || n > maxBlockSize || n&(n-1) != 0 {
				return fmt.Errorf("vdi: %w: block_size=%q is not a power of two from 512 to %d", block.ErrInvalid, v, maxBlockSize)
			}
			blockSize = n
		default:
			return fmt.Errorf("vdi: %w: unknown creation option %q (vdi takes static and block_size)", block.ErrInvalid, k)
		}
	}
	size := (o.Size + sectorSize - 1) / sectorSize * sectorSize
	blocks := (size + blockSize - 1) / blockSize
	if o.Size < 0 || blocks > maxBlocks {
		return fmt.Errorf("vdi: %w: size %d (at most %d blocks of %d bytes)", block.ErrInvalid, o.Size, maxBlocks, blockSize)
	}
	bmapBytes := (blocks*4 + sectorSize - 1) / sectorSize * sectorSize
	h := Header{
		Version:       version11,
		HeaderSize:    headerSize,
		ImageType:     typeDynamic,
		OffsetBmap:    defaultBmap,
		OffsetData:    uint32(defaultBmap + bmapBytes),
		SectorSize:    sectorSize,
		DiskSize:      uint64(size),
		BlockSize:     uint32(blockSize),
		BlocksInImage: uint32(blocks),
		UUIDImage:     newUUID(),
		UUIDLastSnap:  newUUID(),
	}
	fileSize := int64(h.OffsetData)
	if static {
		h.ImageType = typeStatic
		h.BlocksAllocated = uint32(blocks)
		fileSize += blocks * blockSize
	}
	if err := file.Create(name, 0, file.PreallocOff); err != nil {
		return err
	}
	f, err := file.Open(name, file.Options{Growable: true})
	if err != nil {
		return err
	}
	meta := make([]byte, h.OffsetData)
	h.encode(meta)
	for i := int64(0); i < blocks; i++ {
		e := uint32(entryUnallocated)
		if static {
			e = uint32(i)
		}
		le32(meta[int64(h.OffsetBmap)+i*4:], e)
	}
	err = f.Pwrite(meta, 0, 0)
	if err == nil && fileSize > int64(len(meta)) {
		err = f.Pwrite(make([]byte, 1), fileSize-1, 0) // a sparse data area
	}
	if err == nil {
		err = f.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func le32(b []byte, v uint32) { b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24) }

func parseBool(s string) (bool, error) {
	switch s {
	case "on", "true", "yes", "1":
		return true, nil
	case "off", "false", "no", "0":
		return false, nil
	}
	return false, fmt.Errorf("not on or off")
}

// Package vdi reads and writes VirtualBox disk images (VDI) version 1.1,
// static (every block preallocated) and dynamic (blocks allocated on first
// write), as VirtualBox and qemu-img make them.
//
// # Layout
//
// A 0x40-byte text pre-header, the header (signature 0xbeda107f), the
// block map at offset_bmap (one little-endian uint32 per block), and the
// data area at offset_data. Block i of the disk is stored at
// offset_data + map[i]*(block_size+block_extra) + block_extra. A map entry
// of 0xffffffff is an unallocated block (reads as zeros), 0xfffffffe a
// discarded block (reads as zeros).
//
// # Status
//
// BlockStatus reports allocated blocks as Data|Allocated with their host
// offset, and unallocated and discarded blocks as Zero (deallocated): a VDI
// has no backing file here, so they read as zeros, and qemu-img map says
// the same.
//
// # Writing
//
// Opened writable, a dynamic image allocates a block at the end of the data
// area on the first write to it: the whole block (new data and zeros) is
// written, then its map entry, then the header's blocks_allocated, so that
// a crash can leak a block but never expose stale bytes. A writable open
// allocates past every mapped block and past the end of the file, so that
// a block a crash left behind is never reused. Allocations are
// serialized; writes to allocated blocks and reads run concurrently.
// WriteZeroes skips unallocated and discarded blocks (they already read as
// zeros) and writes zero bytes into allocated ones (with NoFallback it
// fails with block.ErrNotSupported there). Discard does nothing.
//
// Every header field is checked against the file size before the block map
// is allocated; a hostile image gives an error wrapping block.ErrCorrupt.
package vdi

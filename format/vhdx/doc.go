// Package vhdx reads Microsoft's VHDX image format ([MS-VHDX] version 1)
// and writes dynamic and fixed VHDX images. The format name is "vhdx", as in
// QEMU.
//
// # Layout
//
// A VHDX file starts with a 64 KiB file identifier ("vhdxfile"), two 4 KiB
// headers at 64 KiB and 128 KiB (the valid one with the higher sequence
// number is current; each carries a CRC-32C), and two copies of the region
// table at 192 KiB and 256 KiB. The region table locates the block
// allocation table (BAT) and the metadata region. The metadata region holds
// the file parameters (block size, has-parent flag), the virtual disk size,
// the logical and physical sector sizes and, in a differencing image, the
// parent locator.
//
// The BAT holds one 64-bit entry per payload block, and after every
// "chunk ratio" payload entries one entry for a sector bitmap block. An
// entry's low 3 bits are its state; bits 20-63 are the file offset in MiB.
//
// # Subformats and block status
//
//   - fixed and dynamic: FULLY_PRESENT blocks are Data|Allocated with their
//     host offset; ZERO blocks read as zeros (Zero); NOT_PRESENT, UNDEFINED
//     and UNMAPPED blocks are not allocated in this layer and read as zeros.
//   - differencing: as above, and a PARTIALLY_PRESENT block holds the
//     sectors whose bit is set in the chunk's sector bitmap (least
//     significant bit first); its other sectors, and blocks that are not
//     allocated, come from the parent. The parent is found by the parent
//     locator's relative_path, then absolute_win32_path and volume_path,
//     and opened through [image.FormatOpen].OpenBacking.
//
// # Log
//
// An image whose header names a log (a non-zero LogGuid) was not closed
// cleanly: its metadata may be stale until the log is replayed. Opening
// never writes a replay into the file (only `thinblk check -r leaks|all`
// does, through [ReplayLog], as qemu-img check does). Such an image is
// refused with an error saying so, unless it is opened read-only with one
// of the options:
//
//   - replay-log=on: the log's active sequence (the valid entry with the
//     highest sequence number and the chain of entries from its tail) is
//     replayed in memory, over a read-only view of the file, before the
//     region table, metadata and BAT are read;
//   - ignore-log=on: the metadata is read as it is on disk, which may be
//     out of date.
//
// # Writing
//
// [Create] makes dynamic (default) or fixed images with qemu-img's options
// (subformat, block_size, log_size, block_state_zero). An image opened
// read-write and not differencing accepts writes: a write to a block that is
// not allocated appends a whole block at the end of the file (1 MiB
// aligned; the file grows over it first, so its unwritten part reads as
// zeros) and maps it in the in-memory BAT. Flush (and Close, and a FUA
// write) flushes the data, then writes the changed BAT pages in place and
// flushes again, so that the file never maps a block whose data may not be
// there. The log is not used: a crash loses the blocks allocated since the
// last flush (their space leaks), never flushed data. The first write after
// open writes a new header (sequence number, FileWriteGuid, DataWriteGuid)
// as [MS-VHDX] asks. Writes that allocate are serialized; writes into
// allocated blocks and all reads run in parallel.
//
// # Safety
//
// Every count, offset and length read from the file (headers, region
// table, metadata items, BAT, parent locator) is checked against the file
// size and the format's limits before anything is allocated; a hostile
// image gets an error wrapping block.ErrCorrupt or block.ErrNotSupported,
// never a panic or a huge allocation.
package vhdx

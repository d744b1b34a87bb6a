// Package vpc reads Microsoft's VHD image format (QEMU's and qemu-img's
// format name "vpc"), as described by Microsoft's "Virtual Hard Disk Image
// Format Specification" (version 1.0), and writes fixed and dynamic VHD
// images.
//
// # Subformats
//
//   - fixed: the guest bytes followed by a 512-byte footer. Read and
//     written in place (the image is writable when opened read-write).
//     Created by [Create] with -o subformat=fixed, and with force_size=on the footer records the exact requested size (what
//     Azure asks for: a size aligned to 1 MiB) instead of rounding it up to
//     a CHS geometry.
//   - dynamic: a footer copy at offset 0, a dynamic disk header, a block
//     allocation table (BAT) of big-endian 32-bit sector offsets
//     (0xFFFFFFFF = not allocated) and data blocks, each preceded by a
//     sector bitmap. A sector is present only if its bitmap bit is set
//     (most significant bit first); other sectors read as zeros, as the
//     specification says (Windows and QEMU read the block's bytes whatever
//     the bitmap says; writers that set every bit of an allocated block,
//     QEMU among them, read the same either way). Written as QEMU does:
//     new 2 MiB blocks are appended with every bitmap bit set (see
//     write.go for the order of the writes); created with
//     -o subformat=dynamic, the default, as in qemu-img.
//   - differencing: a dynamic image whose absent sectors come from a
//     parent image, named by parent locators (platform codes W2ru, W2ku,
//     MacX, and the parent's Unicode name). Read-only; the parent is opened
//     through [image.FormatOpen].OpenBacking.
//
// # Virtual size
//
// As QEMU does, the size is the CHS geometry's (cylinders × heads ×
// sectors × 512) for images made by Virtual PC ("vpc ") and old QEMU
// ("qemu"), and the footer's current size otherwise (Hyper-V, Azure, qemu
// with force_size, ...), or when the geometry is the maximum one. The
// option force_size_calc=chs|current_size overrides the choice.
//
// # Block status
//
// A fixed image reports its file's status (holes in the file read as
// zeros). In a dynamic or differencing image, sectors whose bitmap bit is
// set are Data|Allocated with their host offset. Everything else reads as
// zeros and is reported Zero in a dynamic image (as qemu-img map does), and
// is not allocated in this layer of a differencing image, so
// block.ChainStatus asks the parent.
//
// # Safety
//
// Every count and offset in the footer, the dynamic header, the BAT and the
// parent locators is checked against the file size before anything is
// allocated or read; a hostile image gets an error wrapping
// block.ErrCorrupt (or block.ErrNotSupported), never a panic.
//
// # Concurrency
//
// Reads and block status run in parallel with anything. A dynamic image
// serializes the writes that allocate a block; other writes run in
// parallel. A fixed image passes requests to its file node and is as
// concurrent as that node.
package vpc

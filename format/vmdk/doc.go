// Package vmdk reads VMware virtual disks (VMDK), as described by VMware's
// "Virtual Disk Format 5.0" and as qemu-img writes them.
//
// # Subformats
//
// A VMDK is a descriptor (text) plus one or more extents:
//
//   - monolithicSparse and streamOptimized: one hosted sparse extent file
//     ("KDMV" magic) with the descriptor embedded in it. streamOptimized
//     stores deflate (zlib) compressed grains behind grain markers, and its
//     real header in a footer at the end of the file.
//   - monolithicFlat, twoGbMaxExtentFlat, twoGbMaxExtentSparse, vmfs: a
//     text descriptor file naming FLAT, SPARSE, VMFS and ZERO extents in
//     other files, resolved relative to the descriptor's folder.
//
// A sparse extent maps grains (grainSize sectors) through a grain directory
// of grain tables. A grain table entry of 0 is an unallocated grain (it
// defers to the parent disk, or reads as zeros), 1 a zeroed grain, and any
// other value the sector of the grain (or of its grain marker when grains
// are compressed).
//
// # Parent links
//
// A descriptor with parentFileNameHint is a delta disk: its unallocated
// grains read from the parent, opened as vmdk through
// image.FormatOpen.OpenBacking. The CID/parentCID pair is reported, not
// enforced.
//
// # Writing
//
// Create makes monolithicSparse disks (the default, as qemu-img; with a
// backing file a delta disk over a vmdk parent; zeroed_grain=on allows
// zeroed-grain entries) and streamOptimized disks (what OVA packages and
// vSphere import take).
//
// A monolithicSparse disk whose grain tables all exist (qemu-img and
// VMware preallocate them) opens writable: a grain is allocated at the end
// of the file on its first write, written whole (completed from the parent
// or zeros), then entered in its grain table, so that a crash may leak a
// grain but never map stale bytes. Allocations are serialized; reads and
// writes to allocated grains run concurrently.
//
// A streamOptimized disk is written front to back by a sequential writer
// (see streamWriter), laid out as VMware writes it: header and descriptor,
// compressed grains behind grain markers, then grain tables, grain
// directory, footer and end-of-stream marker. Opening an empty one writable
// gives the writer; one with grains opens read-only.
//
// Every other disk (flat and split subformats, multi-extent descriptors)
// opens read-only.
//
// # Status and limits
//
// A read-only disk returns block.ErrReadOnly from Pwrite, Discard and
// WriteZeroes. BlockStatus reports allocated grains as
// Data|Allocated with their host offset (Compressed for compressed grains,
// whose host offset is the grain marker), zeroed grains as Zero, and
// unallocated grains as neither (so block.ChainStatus asks the parent).
// FLAT extents report the status of the extent file below.
//
// Every count and offset of a header, descriptor, grain directory and grain
// table is checked against the file size before anything is allocated: a
// hostile image gives an error wrapping block.ErrCorrupt, never a panic or
// a huge allocation. Pread and BlockStatus are safe for concurrent use.
package vmdk

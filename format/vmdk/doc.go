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
// Create makes streamOptimized disks only (what OVA packages and vSphere
// import take), laid out as VMware writes them: header and descriptor,
// compressed grains behind grain markers, then grain tables, grain
// directory, footer and end-of-stream marker. Opening such an empty disk
// writable gives a sequential writer (see streamWriter: writes must come
// front to back, as `thinblk convert` sends them by default). Every other
// disk opens read-only.
//
// # Status and limits
//
// The reader is read-only: Pwrite, Discard and WriteZeroes return
// block.ErrReadOnly. BlockStatus reports allocated grains as
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

// Package workload generates deterministic sparse test images: a mix of
// random data extents, explicitly written zero extents (allocated but
// reading zeros) and holes, shaped like a used VM disk. The same Spec and
// seed always give the same bytes, so benchmarks and tests on different
// machines copy the same image. It follows /work/shared/bench/mkimage.py:
// extents of 4 KiB, 64 KiB, 256 KiB, 1 MiB or 4 MiB at random 4 KiB-aligned
// offsets, data first, then zeros (which may land on earlier data).
//
// The mkimage command (internal/workload/mkimage) writes one to a file.
package workload

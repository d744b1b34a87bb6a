package copy

import (
	"fmt"

	"github.com/thinblk/thinblk/block"
)

const (
	// DefaultSparseSize is the zero-detection granularity in bytes when
	// Options.SparseSize is 0 (qemu-img convert's default -S 4k).
	DefaultSparseSize = 4096
	// FullyAllocate as Options.SparseSize turns zero detection off and makes
	// the engine write zeros as bytes: the target is fully allocated
	// (qemu-img convert -S 0).
	FullyAllocate = -1
	// DefaultParallel is the number of requests in flight when
	// Options.Parallel is 0. qemu-img convert defaults to -m 8; on the
	// 2-core machines measured (shared/PERF-NOTES.md) 4 workers copy as
	// fast with less CPU: more than a few writers to one file only contend
	// on its lock, and parallelism helps by overlapping reads with writes.
	DefaultParallel = 4
	// DefaultRequestSize is the size of one data request in bytes when
	// Options.RequestSize is 0. Not 2 MiB: requests start at multiples of
	// their size, and 2 MiB-aligned 2 MiB writes make the page cache take
	// whole 2 MiB folios, which on these VMs often come from memory the
	// host has reclaimed and must fault back: raw->raw took 0.9-1.5 s
	// instead of 0.33 s in such runs (docs/BENCHMARKS.md).
	DefaultRequestSize = 1 << 20
	// zeroRequestSize bounds one request for a zero or skipped range, so
	// that progress moves on huge sparse images.
	zeroRequestSize = 1 << 30
)

// Options control a copy. The zero value copies sparsely with the defaults.
type Options struct {
	// Base stops the walk of the source's backing chain for [Run]: ranges
	// unallocated above Base are skipped (the target's backing file must
	// provide them). Base must be a node of the source's chain. RunSources
	// takes it per source instead.
	Base block.Driver
	// Backing is the target's backing node, or nil. When set, data the
	// source would write is compared with what Backing reads at the same
	// offset, and granules that read the same are not written (convert -B
	// without a shared chain). Ranges the source reads as zeros are zeroed
	// in the target only where Backing does not read zeros.
	Backing block.Driver
	// SparseSize is the zero-detection granularity in bytes: 0 means
	// DefaultSparseSize, FullyAllocate (any negative value) writes
	// everything. It is rounded up to a multiple of the target's cluster
	// size, so that a zero run never splits a target cluster.
	SparseSize int64
	// TargetIsZero says the target reads zeros everywhere before the copy
	// (a freshly created thin image, --target-is-zero): zero ranges are
	// then skipped instead of written. Ignored with FullyAllocate.
	TargetIsZero bool
	// Preallocated says every cluster of the target is allocated already
	// (an image created with preallocation=metadata, falloc or full): a
	// partial write into a cluster then costs no copy-on-write, so data is
	// written at SparseSize granularity instead of in whole clusters, and
	// the zero granules of a cluster are left to the target (qemu-img
	// convert -o preallocation=metadata leaves them holes too).
	Preallocated bool
	// Parallel is the number of requests in flight (0 = DefaultParallel).
	Parallel int
	// OutOfOrder lets writes run in parallel and complete in any order
	// (convert -W). Without it, one write runs at a time, in target order,
	// while reads still run in parallel.
	OutOfOrder bool
	// Compress writes non-zero clusters with the target's
	// Compressor.PwriteCompressed (convert -c).
	Compress bool
	// RequestSize is the size of one data request in bytes
	// (0 = DefaultRequestSize). It is rounded up to the target's cluster
	// size and capped by both nodes' MaxTransfer.
	RequestSize int64
	// Progress, when non-nil, is called with the bytes of the target range
	// done so far and the total, after each request. Calls are serialized;
	// the last one has done == total when the copy succeeds.
	Progress func(done, total int64)
	// SourceName and TargetName name the nodes in errors ("source" and
	// "target" when empty). RunSources uses Source.Name instead.
	SourceName, TargetName string
}

// Source is one source of RunSources: the range [Off, Off+Len) of Node,
// copied to the target right after the previous source's range.
type Source struct {
	Node block.Driver
	// Off and Len select the range of Node to copy, in bytes.
	Off, Len int64
	// Base stops the chain walk (see Options.Base); nil walks it all.
	Base block.Driver
	// Name names the source in errors.
	Name string
}

// Stats count what a copy did, in bytes of the target.
type Stats struct {
	// Read is what was read from the sources (and from Options.Backing).
	Read int64
	// Written is what went to the target as data (Pwrite or compressed).
	Written int64
	// Zeroed is what was zeroed with write-zeroes.
	Zeroed int64
	// Skipped is what needed no request at all: ranges the target already
	// reads as zeros, ranges left to the target's backing, and granules
	// equal to Options.Backing.
	Skipped int64
}

// Compressor is implemented by target formats that store compressed
// clusters. PwriteCompressed writes p, one whole cluster at a
// cluster-aligned offset (or the shorter last cluster of the image).
type Compressor interface {
	PwriteCompressed(p []byte, off int64) error
	ClusterSize() int64
}

// writeCompressor is the same contract spelled the way format/qcow2 spells
// it (WriteCompressed); the engine adapts it to Compressor.
type writeCompressor interface {
	WriteCompressed(p []byte, off int64) error
	ClusterSize() int64
}

type compressAdapter struct{ writeCompressor }

func (a compressAdapter) PwriteCompressed(p []byte, off int64) error {
	return a.WriteCompressed(p, off)
}

// findCompressor finds the compressing node in dst's wrapper stack.
func findCompressor(dst block.Driver) (Compressor, bool) {
	if c, ok := block.As[Compressor](dst); ok {
		return c, true
	}
	if c, ok := block.As[writeCompressor](dst); ok {
		return compressAdapter{c}, true
	}
	return nil, false
}

// clusterSizer is implemented by formats with an allocation unit.
type clusterSizer interface {
	ClusterSize() int64
}

// sparseClusterer is implemented by formats whose clusters need not be
// written whole: a partial write allocates the cluster but leaves the rest
// of it a hole of the file that reads as zeros (VHDX payload blocks, VHD
// blocks, of 2 to 256 MiB). The engine then treats the target as having no
// clusters: growing data extents to whole clusters, and detecting zeros at
// cluster granularity, would write zero bytes over those holes and
// allocate every block touched in full, where qemu-img writes only the
// non-zero 4 KiB granules.
type sparseClusterer interface {
	SparseClusters() bool
}

// settings are the resolved options of one copy.
type settings struct {
	Options
	granule    int64 // zero-detection unit, a multiple of cluster
	cluster    int64 // target cluster size (1 when unknown)
	request    int64 // data request size, a multiple of granule
	parallel   int
	fullyAlloc bool
	ordered    bool // writes wait for their turn in target order
	compressor Compressor
	targetName string
}

func resolve(o Options, srcs []Source, dst block.Driver) (settings, error) {
	s := settings{Options: o, cluster: 1, parallel: o.Parallel, targetName: o.TargetName}
	if s.targetName == "" {
		s.targetName = "target"
	}
	if s.parallel <= 0 {
		s.parallel = DefaultParallel
	}
	if cs, ok := block.As[clusterSizer](dst); ok && cs.ClusterSize() > 0 {
		s.cluster = cs.ClusterSize()
		if sc, ok := block.As[sparseClusterer](dst); (ok && sc.SparseClusters()) || o.Preallocated {
			s.cluster = 1
		}
	}
	if o.Compress {
		c, ok := findCompressor(dst)
		if !ok {
			return s, fmt.Errorf("%w: the target format does not support compression", block.ErrNotSupported)
		}
		s.compressor = c
		s.cluster = max(c.ClusterSize(), 1)
	}
	s.ordered = !o.OutOfOrder
	s.fullyAlloc = o.SparseSize < 0
	sparse := o.SparseSize
	if sparse == 0 {
		sparse = DefaultSparseSize
	}
	if s.fullyAlloc {
		sparse = 1
	}
	s.granule = roundUp(sparse, s.cluster)
	req := o.RequestSize
	if req <= 0 {
		req = DefaultRequestSize
	}
	for _, d := range []block.Driver{dst} {
		if mt := d.Limits().MaxTransfer; mt > 0 && mt < req {
			req = mt
		}
	}
	for _, src := range srcs {
		if mt := src.Node.Limits().MaxTransfer; mt > 0 && mt < req {
			req = mt
		}
	}
	s.request = max(req-req%s.granule, s.granule)
	return s, nil
}

func roundUp(v, a int64) int64 {
	if a <= 1 {
		return v
	}
	return (v + a - 1) / a * a
}

func roundDown(v, a int64) int64 {
	if a <= 1 {
		return v
	}
	return v - v%a
}

package count

import (
	"sync"
	"sync/atomic"

	"github.com/thinblk/thinblk/block"
)

// Op names a counted operation.
type Op int

const (
	Pread Op = iota
	Pwrite
	Discard
	WriteZeroes
	BlockStatus
	Flush
	numOps
)

var opNames = [numOps]string{"pread", "pwrite", "discard", "write-zeroes", "block-status", "flush"}

func (o Op) String() string {
	if o >= 0 && o < numOps {
		return opNames[o]
	}
	return "op?"
}

// Stat counts one operation: Calls includes failed calls; Bytes sums the
// lengths of successful ones (for BlockStatus, the lengths of the returned
// extents); Errors counts failed calls.
type Stat struct {
	Calls, Bytes, Errors int64
}

// Counts is a snapshot of a Node's counters.
type Counts struct {
	Ops [numOps]Stat
	// FUA, MayUnmap and NoFallback count requests (of any operation) that
	// carried the flag.
	FUA, MayUnmap, NoFallback int64
}

// Of returns the counters of one operation.
func (c Counts) Of(op Op) Stat { return c.Ops[op] }

// Request is one recorded request: Len is the length asked for.
type Request struct {
	Op    Op
	Off   int64
	Len   int64
	Flags block.Flags
	Err   error
}

// Node counts requests to the node below. It is safe for concurrent use;
// counters are updated atomically after each call returns.
type Node struct {
	d block.Driver

	ops                       [numOps]struct{ calls, bytes, errors atomic.Int64 }
	fua, mayUnmap, noFallback atomic.Int64

	mu        sync.Mutex // guards recording and requests
	recording bool
	requests  []Request
}

// New returns a counting node over d. It owns d: Close closes d.
func New(d block.Driver) *Node { return &Node{d: d} }

// Counts returns a snapshot of the counters.
func (n *Node) Counts() Counts {
	var c Counts
	for i := range c.Ops {
		c.Ops[i] = Stat{Calls: n.ops[i].calls.Load(), Bytes: n.ops[i].bytes.Load(), Errors: n.ops[i].errors.Load()}
	}
	c.FUA, c.MayUnmap, c.NoFallback = n.fua.Load(), n.mayUnmap.Load(), n.noFallback.Load()
	return c
}

// Reset zeroes the counters and drops recorded requests.
func (n *Node) Reset() {
	for i := range n.ops {
		n.ops[i].calls.Store(0)
		n.ops[i].bytes.Store(0)
		n.ops[i].errors.Store(0)
	}
	n.fua.Store(0)
	n.mayUnmap.Store(0)
	n.noFallback.Store(0)
	n.mu.Lock()
	n.requests = nil
	n.mu.Unlock()
}

// Record turns recording of every request on or off.
func (n *Node) Record(on bool) {
	n.mu.Lock()
	n.recording = on
	n.mu.Unlock()
}

// Requests returns the requests recorded so far, in completion order.
func (n *Node) Requests() []Request {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Request(nil), n.requests...)
}

// note counts a completed request of length bytes at off that moved bytes
// bytes.
func (n *Node) note(op Op, off, length, bytes int64, flags block.Flags, err error) {
	s := &n.ops[op]
	s.calls.Add(1)
	if err != nil {
		s.errors.Add(1)
	} else {
		s.bytes.Add(bytes)
	}
	if flags.Has(block.FUA) {
		n.fua.Add(1)
	}
	if flags.Has(block.MayUnmap) {
		n.mayUnmap.Add(1)
	}
	if flags.Has(block.NoFallback) {
		n.noFallback.Add(1)
	}
	n.mu.Lock()
	if n.recording {
		n.requests = append(n.requests, Request{Op: op, Off: off, Len: length, Flags: flags, Err: err})
	}
	n.mu.Unlock()
}

func (n *Node) Pread(p []byte, off int64) error {
	err := n.d.Pread(p, off)
	n.note(Pread, off, int64(len(p)), int64(len(p)), 0, err)
	return err
}

func (n *Node) Pwrite(p []byte, off int64, flags block.Flags) error {
	err := n.d.Pwrite(p, off, flags)
	n.note(Pwrite, off, int64(len(p)), int64(len(p)), flags, err)
	return err
}

func (n *Node) Discard(off, length int64, flags block.Flags) error {
	err := n.d.Discard(off, length, flags)
	n.note(Discard, off, length, length, flags, err)
	return err
}

func (n *Node) WriteZeroes(off, length int64, flags block.Flags) error {
	err := n.d.WriteZeroes(off, length, flags)
	n.note(WriteZeroes, off, length, length, flags, err)
	return err
}

func (n *Node) BlockStatus(off, length int64) (block.Extent, error) {
	e, err := n.d.BlockStatus(off, length)
	n.note(BlockStatus, off, length, e.Len, 0, err)
	return e, err
}

func (n *Node) Flush() error {
	err := n.d.Flush()
	n.note(Flush, 0, 0, 0, 0, err)
	return err
}

func (n *Node) Size() int64               { return n.d.Size() }
func (n *Node) Close() error              { return n.d.Close() }
func (n *Node) Caps() block.Caps          { return n.d.Caps() }
func (n *Node) Limits() block.Limits      { return n.d.Limits() }
func (n *Node) Info() (block.Info, error) { return n.d.Info() }
func (n *Node) Unwrap() block.Driver      { return n.d }
func (n *Node) Backing() block.Driver     { return block.BackingOf(n.d) }

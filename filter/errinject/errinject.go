package errinject

import (
	"errors"
	"sync"

	"github.com/thinblk/thinblk/block"
)

// ErrInjected is the error a rule returns when it names none.
var ErrInjected = errors.New("injected error")

// Op is a set of operations a rule applies to.
type Op uint

const (
	Pread Op = 1 << iota
	Pwrite
	Discard
	WriteZeroes
	BlockStatus
	Flush
	// Writes are the operations that change content.
	Writes = Pwrite | Discard | WriteZeroes
	// All is every operation.
	All = Pread | Writes | BlockStatus | Flush
)

var opNames = map[Op]string{Pread: "pread", Pwrite: "pwrite", Discard: "discard",
	WriteZeroes: "write-zeroes", BlockStatus: "block-status", Flush: "flush"}

// Rule says which requests fail and how.
type Rule struct {
	// Ops the rule applies to (a set).
	Ops Op
	// Off and Len: a request matches when it overlaps [Off, Off+Len).
	// Len <= 0 means any offset. Flush has no range and matches any rule
	// naming it.
	Off, Len int64
	// Flags: a request matches only when it carries all of these.
	Flags block.Flags
	// Skip lets the first Skip matching requests through.
	Skip int
	// Times is how many matching requests fail (after Skip); 0 = all.
	Times int
	// Err is the cause returned, wrapped in a *block.OpError; nil means
	// ErrInjected. Use block.ErrNotSupported to exercise fallbacks,
	// block.ErrNoSpace for a full disk, and so on.
	Err error
	// After carries the request out before failing it (a lost reply: the
	// data may or may not be there, as after a real I/O error).
	After bool
}

// rule is a Rule with its match counters. Guarded by Node.mu.
type rule struct {
	Rule
	seen, failed int
}

// Node injects errors into requests to the node below. It is safe for
// concurrent use.
type Node struct {
	d block.Driver

	mu       sync.Mutex // guards rules and injected
	rules    []*rule
	injected int
}

// New returns a node over d failing requests by rules (more can be added
// with Add). It owns d: Close closes d.
func New(d block.Driver, rules ...Rule) *Node {
	n := &Node{d: d}
	for _, r := range rules {
		n.Add(r)
	}
	return n
}

// Add appends a rule. The first rule that matches a request and still has
// failures left decides.
func (n *Node) Add(r Rule) {
	n.mu.Lock()
	n.rules = append(n.rules, &rule{Rule: r})
	n.mu.Unlock()
}

// Clear removes every rule.
func (n *Node) Clear() {
	n.mu.Lock()
	n.rules = nil
	n.mu.Unlock()
}

// Injected returns how many requests have been failed so far.
func (n *Node) Injected() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.injected
}

// match returns the rule failing this request, or nil.
func (n *Node) match(op Op, off, length int64, flags block.Flags) *Rule {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, r := range n.rules {
		if r.Ops&op == 0 || !flags.Has(r.Flags) {
			continue
		}
		if op != Flush && r.Len > 0 && !(off < r.Off+r.Len && r.Off < off+max(length, 1)) {
			continue
		}
		if r.Times > 0 && r.failed >= r.Times {
			continue
		}
		r.seen++
		if r.seen <= r.Skip {
			continue
		}
		r.failed++
		n.injected++
		rr := r.Rule
		return &rr
	}
	return nil
}

// inject runs do unless a rule fails the request first (or after, with
// After).
func (n *Node) inject(op Op, off, length int64, flags block.Flags, do func() error) error {
	r := n.match(op, off, length, flags)
	if r == nil {
		return do()
	}
	if r.After {
		_ = do()
	}
	cause := r.Err
	if cause == nil {
		cause = ErrInjected
	}
	return &block.OpError{Op: opNames[op], Node: "errinject", Off: off, Len: length, Err: cause}
}

func (n *Node) Pread(p []byte, off int64) error {
	return n.inject(Pread, off, int64(len(p)), 0, func() error { return n.d.Pread(p, off) })
}

func (n *Node) Pwrite(p []byte, off int64, flags block.Flags) error {
	return n.inject(Pwrite, off, int64(len(p)), flags, func() error { return n.d.Pwrite(p, off, flags) })
}

func (n *Node) Discard(off, length int64, flags block.Flags) error {
	return n.inject(Discard, off, length, flags, func() error { return n.d.Discard(off, length, flags) })
}

func (n *Node) WriteZeroes(off, length int64, flags block.Flags) error {
	return n.inject(WriteZeroes, off, length, flags, func() error { return n.d.WriteZeroes(off, length, flags) })
}

func (n *Node) BlockStatus(off, length int64) (block.Extent, error) {
	var e block.Extent
	err := n.inject(BlockStatus, off, length, 0, func() error {
		var err error
		e, err = n.d.BlockStatus(off, length)
		return err
	})
	if err != nil {
		return block.Extent{}, err
	}
	return e, nil
}

func (n *Node) Flush() error {
	return n.inject(Flush, 0, 0, 0, n.d.Flush)
}

func (n *Node) Size() int64               { return n.d.Size() }
func (n *Node) Close() error              { return n.d.Close() }
func (n *Node) Caps() block.Caps          { return n.d.Caps() }
func (n *Node) Limits() block.Limits      { return n.d.Limits() }
func (n *Node) Info() (block.Info, error) { return n.d.Info() }
func (n *Node) Unwrap() block.Driver      { return n.d }
func (n *Node) Backing() block.Driver     { return block.BackingOf(n.d) }

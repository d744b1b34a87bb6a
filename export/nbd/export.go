package nbd

import (
	"fmt"
	"math/bits"
	"sync"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/internal/nbdwire"
)

// Export is one disk the server offers.
type Export struct {
	// Name is the export name clients ask for ("" is the default export).
	Name string
	// Description is shown by NBD_OPT_LIST and NBD_INFO_DESCRIPTION.
	Description string
	// Node is the opened disk. The server never closes it; Server.Shutdown
	// flushes it.
	Node block.Driver
	// ReadOnly refuses every write (NBD_FLAG_READ_ONLY), also when the node
	// is writable.
	ReadOnly bool
	// Discard is the export's discard mode: DiscardIgnore (the default)
	// accepts TRIM and does nothing, and does not advertise it;
	// DiscardUnmap passes TRIM down (advertised when Caps().Discard).
	Discard block.DiscardMode
	// DetectZeroes turns all-zero writes into write-zeroes.
	DetectZeroes block.DetectZeroes
	// AllocationDepth offers the qemu:allocation-depth context.
	AllocationDepth bool
	// MultiConn advertises NBD_FLAG_CAN_MULTI_CONN. Every connection of a
	// server shares the one node and its cache, so a flush on one covers
	// writes acknowledged on another: it is safe whenever the node is only
	// written through this server.
	MultiConn bool

	once    sync.Once
	node    block.Driver // Node with the export's policy applied
	flags   uint16       // transmission flags without per-connection bits
	minBlk  uint32
	prefBlk uint32
	maxPay  uint32
	locks   block.RangeLocks
	initErr error
}

// prepare computes the effective node, the flags and the size constraints
// once.
func (e *Export) prepare() error {
	e.once.Do(func() {
		if e.Node == nil {
			e.initErr = fmt.Errorf("export %q has no node", e.Name)
			return
		}
		if err := nbdwire.CheckString(e.Name); err != nil {
			e.initErr = fmt.Errorf("export name: %w", err)
			return
		}
		e.node = block.WithPolicy(e.Node, block.Policy{Discard: e.Discard, DetectZeroes: e.DetectZeroes})
		e.flags = e.TransmissionFlags()
		e.minBlk, e.prefBlk, e.maxPay = e.BlockSizes()
	})
	return e.initErr
}

// writable reports whether writes are accepted.
func (e *Export) writable() bool { return !e.ReadOnly && e.Node.Caps().Write }

// TransmissionFlags derives the export's transmission flags from the node's
// Caps and the export's settings. NBD_FLAG_SEND_DF, which depends on the
// connection's negotiation, is added per connection.
func (e *Export) TransmissionFlags() uint16 {
	c := e.Node.Caps()
	f := nbdwire.FlagHasFlags | nbdwire.FlagSendCache
	if !e.writable() {
		f |= nbdwire.FlagReadOnly
	} else {
		if c.Flush {
			// FUA is native or emulated by the node with a flush; without
			// a volatile cache every write is already durable.
			f |= nbdwire.FlagSendFlush | nbdwire.FlagSendFUA
		}
		if e.Discard == block.DiscardUnmap && c.Discard {
			f |= nbdwire.FlagSendTrim
		}
		// WRITE_ZEROES is always possible: block.ZeroRange falls back to
		// writing zeros. FAST_ZERO only when the node zeroes natively fast.
		f |= nbdwire.FlagSendWriteZeroes
		if c.FastZero {
			f |= nbdwire.FlagSendFastZero
		}
	}
	if e.MultiConn {
		f |= nbdwire.FlagCanMultiConn
	}
	return f
}

// BlockSizes returns the NBD_INFO_BLOCK_SIZE constraints from the node's
// Limits: minimum = the request alignment (1 for byte-addressable nodes),
// preferred = the optimal transfer or 4 KiB (a power of two >= 512 and >=
// minimum), maximum payload = the max transfer capped at 32 MiB.
func (e *Export) BlockSizes() (minimum, preferred, maximum uint32) {
	l := e.Node.Limits()
	minimum = 1
	if l.RequestAlign > 1 && l.RequestAlign <= 1<<16 && bits.OnesCount64(uint64(l.RequestAlign)) == 1 {
		minimum = uint32(l.RequestAlign)
	}
	preferred = 4096
	if o := l.OptimalTransfer; o > 0 && o <= 1<<20 && bits.OnesCount64(uint64(o)) == 1 {
		preferred = uint32(o)
	}
	preferred = max(preferred, minimum, 512)
	maximum = nbdwire.DefaultMaxPayload
	if m := l.MaxTransfer; m > 0 && m < int64(maximum) {
		maximum = uint32(m) / minimum * minimum
	}
	maximum = max(maximum, preferred)
	return minimum, preferred, maximum
}

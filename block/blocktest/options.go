package blocktest

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/thinblk/thinblk/block"
)

// Options tune a conformance run. The zero value is a sensible default.
type Options struct {
	// Size is the virtual size Run asks open for; default 4 MiB. Check
	// uses the node's own Size.
	Size int64
	// Ops is the number of random operations of the sequential phase
	// (default 500). The concurrent phase runs as many again, shared among
	// its workers.
	Ops int
	// Seed makes a run repeatable. 0 means: THINBLK_SEED from the
	// environment when set, else the time.
	Seed int64
	// Align is the alignment of the offsets and lengths of the requests the
	// suite sends (Pread, Pwrite, and also WriteZeroes and Discard); 0
	// means the node's Limits().RequestAlign (1 when that is 0). It must be
	// a multiple of RequestAlign.
	Align int64
	// MaxLen caps the length of one request; default min(Size/4, 1 MiB).
	// The node's MaxTransfer, MaxDiscard and MaxWriteZeroes cap it further
	// for the requests they govern.
	MaxLen int64
	// Concurrent adds a phase in which Workers goroutines (default 4) run
	// random operations on disjoint ranges, followed by a full compare.
	Concurrent bool
	Workers    int
	// Reopen, when set, is called after the random phases and a Flush: it
	// must close d and open the same image again. The suite then compares
	// every byte with the model (persistence) and goes on with the new node.
	Reopen func(d block.Driver) (block.Driver, error)
	// Initial is the content the node starts with (len Size, or shorter
	// with zeros after it); nil means all zeros. A node over a backing file
	// starts with the backing file's content.
	Initial []byte
	// NoAlignWrapper stops Run from also running the suite through
	// block.Align with byte-aligned requests when the node's RequestAlign
	// is above 1.
	NoAlignWrapper bool
}

const (
	defaultSize    = 4 << 20
	defaultOps     = 500
	defaultWorkers = 4
)

// seedFromEnv returns THINBLK_SEED when set, else the time.
func seedFromEnv() (int64, error) {
	if s := os.Getenv("THINBLK_SEED"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("THINBLK_SEED=%q: %w", s, err)
		}
		return v, nil
	}
	return time.Now().UnixNano(), nil
}

package copy

import (
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/block/blocktest"
)

// seed returns THINBLK_SEED or a fresh seed, and logs it.
// TODO: use internal/testutil.Seed once every package may import it.
func seed(t *testing.T) int64 {
	t.Helper()
	s := int64(rand.Uint64() >> 1)
	if v := os.Getenv("THINBLK_SEED"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("THINBLK_SEED=%q: %v", v, err)
		}
		s = n
	}
	t.Logf("seed %d", s)
	return s
}

// counter wraps a node and records its mutating calls.
// TODO: switch to filter/count when it lands.
type counter struct {
	block.Driver
	mu          sync.Mutex
	writes      []item // kind data: Pwrite; kind zero: WriteZeroes
	writeBytes  int64
	zeroBytes   int64
	compressed  []item
	cluster     int64 // ClusterSize; 0 = not a clusterSizer-like node
	failReadAt  int64 // Pread covering this offset fails (-1 = never)
	failWriteAt int64
}

func newCounter(d block.Driver) *counter {
	return &counter{Driver: d, failReadAt: -1, failWriteAt: -1}
}

func (c *counter) Unwrap() block.Driver  { return c.Driver }
func (c *counter) Backing() block.Driver { return block.BackingOf(c.Driver) }

var errInjected = fmt.Errorf("injected I/O error: %w", os.ErrInvalid)

func (c *counter) Pread(p []byte, off int64) error {
	if c.failReadAt >= 0 && off <= c.failReadAt && c.failReadAt < off+int64(len(p)) {
		return &block.OpError{Op: "pread", Node: "errinject", Off: c.failReadAt, Len: 1, Err: errInjected}
	}
	return c.Driver.Pread(p, off)
}

func (c *counter) Pwrite(p []byte, off int64, flags block.Flags) error {
	if c.failWriteAt >= 0 && off <= c.failWriteAt && c.failWriteAt < off+int64(len(p)) {
		return &block.OpError{Op: "pwrite", Node: "errinject", Off: c.failWriteAt, Len: 1, Err: errInjected}
	}
	c.mu.Lock()
	c.writes = append(c.writes, item{kind: kindData, off: off, n: int64(len(p))})
	c.writeBytes += int64(len(p))
	c.mu.Unlock()
	return c.Driver.Pwrite(p, off, flags)
}

func (c *counter) WriteZeroes(off, n int64, flags block.Flags) error {
	c.mu.Lock()
	c.writes = append(c.writes, item{kind: kindZero, off: off, n: n})
	c.zeroBytes += n
	c.mu.Unlock()
	return c.Driver.WriteZeroes(off, n, flags)
}

// clustered is a counter that also reports a cluster size and accepts
// compressed writes (stored as plain data).
type clustered struct{ *counter }

func (c clustered) ClusterSize() int64 { return c.cluster }

func (c clustered) PwriteCompressed(p []byte, off int64) error {
	c.mu.Lock()
	c.compressed = append(c.compressed, item{kind: kindData, off: off, n: int64(len(p))})
	c.mu.Unlock()
	return c.Driver.Pwrite(p, off, 0)
}

func newFake(size int64, backing block.Driver) *blocktest.Fake {
	return blocktest.NewFake(blocktest.FakeOptions{Size: size, Caps: blocktest.FullCaps, Backing: backing})
}

// fill gives d a random mix, in 4 KiB granules: random data, written
// zeros (data that is zero), anchored zeros, deallocated zeros and
// untouched (unallocated) ranges. It returns the expected content.
func fill(t *testing.T, r *rand.Rand, d block.Driver, want []byte) {
	t.Helper()
	size := d.Size()
	for off := int64(0); off < size; {
		n := min(int64(1+r.Intn(40))*4096, size-off)
		var err error
		switch r.Intn(6) {
		case 0, 1:
			p := make([]byte, n)
			r.Read(p)
			if r.Intn(4) == 0 { // some zero bytes inside data
				clear(p[r.Intn(len(p)):])
			}
			err = d.Pwrite(p, off, 0)
			if want != nil {
				copy(want[off:], p)
			}
		case 2:
			err = d.Pwrite(make([]byte, n), off, 0)
			if want != nil {
				clear(want[off : off+n])
			}
		case 3:
			err = d.WriteZeroes(off, n, 0)
			if want != nil {
				clear(want[off : off+n])
			}
		case 4:
			err = d.WriteZeroes(off, n, block.MayUnmap)
			if want != nil {
				clear(want[off : off+n])
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		off += n
	}
}

func readAll(t *testing.T, d block.Driver) []byte {
	t.Helper()
	p := make([]byte, d.Size())
	if err := d.Pread(p, 0); err != nil {
		t.Fatal(err)
	}
	return p
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

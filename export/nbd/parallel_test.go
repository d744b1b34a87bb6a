package nbd

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/protocol/mem"
	client "github.com/thinblk/thinblk/protocol/nbd"
)

// slowNode makes every Pread take a while and records how many ran at
// once.
type slowNode struct {
	block.Driver
	delay       time.Duration
	now, maxNow atomic.Int32
}

func (n *slowNode) Pread(p []byte, off int64) error {
	cur := n.now.Add(1)
	defer n.now.Add(-1)
	for {
		m := n.maxNow.Load()
		if cur <= m || n.maxNow.CompareAndSwap(m, cur) {
			break
		}
	}
	time.Sleep(n.delay)
	return n.Driver.Pread(p, off)
}

// TestSlowSmallReadsRunInParallel: small reads normally run one after
// another in the reading worker; when they are slow (a disk, not a
// cache) the server must go back to running them in parallel.
func TestSlowSmallReadsRunInParallel(t *testing.T) {
	node := &slowNode{Driver: mem.New(1 << 20), delay: 2 * time.Millisecond}
	s := &Server{Exports: map[string]*Export{"": {Node: node}}, Workers: 4}
	_, uri := startServer(t, s, "")
	c, err := client.Dial(uri, true)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := make([]byte, 4096)
			for k := range 8 {
				if err := c.Pread(p, int64((i*8+k)*4096)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if m := node.maxNow.Load(); m < 2 {
		t.Fatalf("slow 4 KiB reads ran at most %d at once, want parallel (>= 2)", m)
	}
}

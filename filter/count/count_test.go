package count_test

import (
	"errors"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/block/blocktest"
	"github.com/thinblk/thinblk/filter/count"
	"github.com/thinblk/thinblk/protocol/mem"
)

func TestConforms(t *testing.T) {
	blocktest.Run(t, func(t *testing.T, size int64) block.Driver {
		return count.New(mem.New(size))
	}, blocktest.Options{Ops: 300, Concurrent: true})
}

func TestCounts(t *testing.T) {
	n := count.New(mem.New(1 << 20))
	n.Record(true)
	buf := make([]byte, 4096)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(n.Pwrite(buf, 0, block.FUA))
	must(n.Pwrite(buf[:100], 8192, 0))
	must(n.Pread(buf, 4096))
	must(n.WriteZeroes(0, 65536, block.MayUnmap|block.NoFallback))
	must(n.Discard(65536, 4096, 0))
	if _, err := n.BlockStatus(0, 1<<20); err != nil {
		t.Fatal(err)
	}
	must(n.Flush())
	if err := n.Pwrite(buf, 1<<20, 0); !errors.Is(err, block.ErrOutOfRange) {
		t.Fatalf("out-of-range write: %v", err)
	}
	c := n.Counts()
	want := map[count.Op]count.Stat{
		count.Pwrite:      {Calls: 3, Bytes: 4196, Errors: 1},
		count.Pread:       {Calls: 1, Bytes: 4096},
		count.WriteZeroes: {Calls: 1, Bytes: 65536},
		count.Discard:     {Calls: 1, Bytes: 4096},
		count.Flush:       {Calls: 1},
	}
	for op, w := range want {
		if got := c.Of(op); got != w {
			t.Errorf("%v: got %+v, want %+v", op, got, w)
		}
	}
	if bs := c.Of(count.BlockStatus); bs.Calls != 1 || bs.Bytes <= 0 || bs.Bytes > 1<<20 {
		t.Errorf("block-status: %+v", bs)
	}
	if c.FUA != 1 || c.MayUnmap != 1 || c.NoFallback != 1 {
		t.Errorf("flags: FUA %d MayUnmap %d NoFallback %d, want 1 each", c.FUA, c.MayUnmap, c.NoFallback)
	}
	reqs := n.Requests()
	if len(reqs) != 8 {
		t.Fatalf("recorded %d requests, want 8: %+v", len(reqs), reqs)
	}
	if r := reqs[1]; r.Op != count.Pwrite || r.Off != 8192 || r.Len != 100 || r.Err != nil {
		t.Errorf("second request %+v", r)
	}
	if r := reqs[7]; r.Err == nil {
		t.Errorf("last request should have failed: %+v", r)
	}
	n.Reset()
	if c := n.Counts(); c != (count.Counts{}) || len(n.Requests()) != 0 {
		t.Errorf("after Reset: %+v, %d requests", c, len(n.Requests()))
	}
}

func TestForwardsBacking(t *testing.T) {
	base := mem.New(1 << 20)
	top := blocktest.NewFake(blocktest.FakeOptions{Size: 1 << 20, Caps: blocktest.FullCaps, Backing: base})
	n := count.New(top)
	if b := block.BackingOf(n); b != block.Driver(base) {
		t.Fatalf("Backing() = %v, want the fake's backing", b)
	}
	if f, ok := block.As[*blocktest.Fake](n); !ok || f != top {
		t.Fatal("As did not find the fake below the counter")
	}
}

package block_test

import (
	"errors"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/block/blocktest"
	"github.com/thinblk/thinblk/filter/count"
	"github.com/thinblk/thinblk/filter/errinject"
)

func TestIsZero(t *testing.T) {
	buf := make([]byte, 200)
	for n := 0; n <= len(buf); n++ {
		if !block.IsZero(buf[:n]) {
			t.Fatalf("IsZero(%d zero bytes) = false", n)
		}
		for i := 0; i < n; i++ {
			buf[i] = 1
			if block.IsZero(buf[:n]) {
				t.Fatalf("IsZero(%d bytes with byte %d set) = true", n, i)
			}
			buf[i] = 0
		}
	}
}

// zeroFake is a fake without native write-zeroes, so that its data shows
// whether zeros were written.
func zeroFake(size int64, l block.Limits) *blocktest.Fake {
	caps := blocktest.FullCaps
	caps.WriteZeroes, caps.FastZero, caps.ZeroUnmap = false, false, false
	return blocktest.NewFake(blocktest.FakeOptions{Size: size, Caps: caps, Limits: l})
}

func fill(t *testing.T, d block.Driver, b byte) {
	t.Helper()
	p := make([]byte, d.Size())
	for i := range p {
		p[i] = b
	}
	err := block.SplitRequest(0, d.Size(), d.Limits().MaxTransfer, func(off, n int64) error {
		return d.Pwrite(p[off:off+n], off, 0)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// expect checks that [0, Size) reads as b outside [zOff, zOff+zLen) and as
// zeros inside.
func expect(t *testing.T, d block.Driver, b byte, zOff, zLen int64) {
	t.Helper()
	p := make([]byte, d.Size())
	err := block.SplitRequest(0, d.Size(), d.Limits().MaxTransfer, func(off, n int64) error {
		return d.Pread(p[off:off+n], off)
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range p {
		want := b
		if int64(i) >= zOff && int64(i) < zOff+zLen {
			want = 0
		}
		if c != want {
			t.Fatalf("offset %d reads 0x%02x, want 0x%02x", i, c, want)
		}
	}
}

func TestWriteZeroesFallback(t *testing.T) {
	f := zeroFake(3<<20, block.Limits{MaxTransfer: 256 << 10})
	fill(t, f, 0xFF)
	c := count.New(f)
	c.Record(true)
	if err := block.WriteZeroesFallback(c, 1000, 2<<20, block.FUA|block.MayUnmap); err != nil {
		t.Fatal(err)
	}
	expect(t, f, 0xFF, 1000, 2<<20)
	for _, r := range c.Requests() {
		if r.Op != count.Pwrite || r.Len > 256<<10 || r.Flags != block.FUA {
			t.Fatalf("fallback sent %+v (want Pwrite <= MaxTransfer with FUA only)", r)
		}
	}
	if err := block.WriteZeroesFallback(c, 0, 10, block.NoFallback); !errors.Is(err, block.ErrNotSupported) {
		t.Fatalf("NoFallback: %v", err)
	}
}

func TestZeroRange(t *testing.T) {
	t.Run("splits at MaxWriteZeroes", func(t *testing.T) {
		f := blocktest.NewFake(blocktest.FakeOptions{Size: 1 << 20, Caps: blocktest.FullCaps,
			Limits: block.Limits{MaxWriteZeroes: 64 << 10}})
		fill(t, f, 0xAA)
		c := count.New(f)
		if err := block.ZeroRange(c, 4096, 300<<10, block.MayUnmap); err != nil {
			t.Fatal(err)
		}
		expect(t, f, 0xAA, 4096, 300<<10)
		if got := c.Counts().Of(count.WriteZeroes); got.Calls != 5 || got.Bytes != 300<<10 {
			t.Fatalf("write-zeroes %+v, want 5 calls for 300 KiB", got)
		}
	})
	t.Run("falls back on ErrNotSupported", func(t *testing.T) {
		f := blocktest.NewFake(blocktest.FakeOptions{Size: 1 << 20, Caps: blocktest.FullCaps})
		fill(t, f, 0xAA)
		c := count.New(f)
		c.Record(true)
		d := errinject.New(c, errinject.Rule{Ops: errinject.WriteZeroes, Err: block.ErrNotSupported})
		if err := block.ZeroRange(d, 10, 5000, block.MayUnmap|block.FUA); err != nil {
			t.Fatal(err)
		}
		expect(t, f, 0xAA, 10, 5000)
		for _, r := range c.Requests() {
			if r.Op != count.Pwrite || r.Flags != block.FUA {
				t.Fatalf("fallback sent %+v, want Pwrite with FUA only", r)
			}
		}
	})
	t.Run("NoFallback does not fall back", func(t *testing.T) {
		f := blocktest.NewFake(blocktest.FakeOptions{Size: 1 << 20, Caps: blocktest.FullCaps})
		fill(t, f, 0xAA)
		d := errinject.New(f, errinject.Rule{Ops: errinject.WriteZeroes, Err: block.ErrNotSupported})
		if err := block.ZeroRange(d, 10, 5000, block.NoFallback); !errors.Is(err, block.ErrNotSupported) {
			t.Fatalf("got %v, want ErrNotSupported", err)
		}
		expect(t, f, 0xAA, 0, 0)
	})
	t.Run("other errors are returned", func(t *testing.T) {
		f := blocktest.NewFake(blocktest.FakeOptions{Size: 1 << 20, Caps: blocktest.FullCaps})
		fill(t, f, 0xAA)
		d := errinject.New(f, errinject.Rule{Ops: errinject.WriteZeroes, Err: block.ErrNoSpace})
		if err := block.ZeroRange(d, 10, 5000, 0); !errors.Is(err, block.ErrNoSpace) {
			t.Fatalf("got %v, want ErrNoSpace", err)
		}
		expect(t, f, 0xAA, 0, 0)
	})
}

func TestDiscardRange(t *testing.T) {
	f := blocktest.NewFake(blocktest.FakeOptions{Size: 1 << 20, Caps: blocktest.FullCaps,
		Limits: block.Limits{MaxDiscard: 128 << 10}})
	fill(t, f, 0x11)
	c := count.New(f)
	c.Record(true)
	if err := block.DiscardRange(c, 0, 1<<20, 0); err != nil {
		t.Fatal(err)
	}
	expect(t, f, 0x11, 0, 1<<20)
	if got := c.Counts().Of(count.Discard); got.Calls != 8 {
		t.Fatalf("discard %+v, want 8 calls", got)
	}
}

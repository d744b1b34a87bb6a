package block_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/block/blocktest"
	"github.com/thinblk/thinblk/filter/count"
	"github.com/thinblk/thinblk/filter/errinject"
	"github.com/thinblk/thinblk/protocol/mem"
)

func TestParseDiscardMode(t *testing.T) {
	for in, want := range map[string]block.DiscardMode{
		"ignore": block.DiscardIgnore, "off": block.DiscardIgnore, "OFF": block.DiscardIgnore,
		"unmap": block.DiscardUnmap, "on": block.DiscardUnmap, "Unmap": block.DiscardUnmap,
	} {
		got, err := block.ParseDiscardMode(in)
		if err != nil || got != want {
			t.Errorf("ParseDiscardMode(%q) = %v, %v; want %v", in, got, err, want)
		}
		if back, err := block.ParseDiscardMode(got.String()); err != nil || back != got {
			t.Errorf("%v does not round-trip through String", got)
		}
	}
	for _, in := range []string{"", "yes", "trim", "unmap "} {
		if _, err := block.ParseDiscardMode(in); !errors.Is(err, block.ErrInvalid) {
			t.Errorf("ParseDiscardMode(%q): %v, want ErrInvalid", in, err)
		}
	}
}

func TestParseDetectZeroes(t *testing.T) {
	for in, want := range map[string]block.DetectZeroes{
		"off": block.DetectZeroesOff, "on": block.DetectZeroesOn, "unmap": block.DetectZeroesUnmap, "ON": block.DetectZeroesOn,
	} {
		got, err := block.ParseDetectZeroes(in)
		if err != nil || got != want {
			t.Errorf("ParseDetectZeroes(%q) = %v, %v; want %v", in, got, err, want)
		}
		if back, err := block.ParseDetectZeroes(got.String()); err != nil || back != got {
			t.Errorf("%v does not round-trip through String", got)
		}
	}
	for _, in := range []string{"", "ignore", "true", "1"} {
		if _, err := block.ParseDetectZeroes(in); !errors.Is(err, block.ErrInvalid) {
			t.Errorf("ParseDetectZeroes(%q): %v, want ErrInvalid", in, err)
		}
	}
}

func TestWithPolicyIdentity(t *testing.T) {
	m := mem.New(1 << 20)
	if d := block.WithPolicy(m, block.Policy{Discard: block.DiscardUnmap}); d != block.Driver(m) {
		t.Fatal("a policy that changes nothing wrapped the node")
	}
	if d := block.WithPolicy(m, block.Policy{}); d == block.Driver(m) {
		t.Fatal("the zero Policy (discard ignore) must wrap")
	}
}

// TestWithPolicyConforms runs the suite on every policy over mem and over a
// fake device whose discard does not zero.
func TestWithPolicyConforms(t *testing.T) {
	device := blocktest.FullCaps
	device.DiscardZeroes = false
	for _, dm := range []block.DiscardMode{block.DiscardIgnore, block.DiscardUnmap} {
		for _, dz := range []block.DetectZeroes{block.DetectZeroesOff, block.DetectZeroesOn, block.DetectZeroesUnmap} {
			p := block.Policy{Discard: dm, DetectZeroes: dz}
			t.Run(fmt.Sprintf("discard=%v,detect-zeroes=%v", dm, dz), func(t *testing.T) {
				t.Parallel()
				blocktest.Run(t, func(t *testing.T, size int64) block.Driver {
					return block.WithPolicy(mem.New(size), p)
				}, blocktest.Options{Ops: 300})
				blocktest.Run(t, func(t *testing.T, size int64) block.Driver {
					return block.WithPolicy(blocktest.NewFake(blocktest.FakeOptions{Size: size, Caps: device}), p)
				}, blocktest.Options{Ops: 300})
			})
		}
	}
}

func TestDiscardIgnore(t *testing.T) {
	f := blocktest.NewFake(blocktest.FakeOptions{Size: 1 << 20, Caps: blocktest.FullCaps})
	fill(t, f, 0x77)
	c := count.New(f)
	c.Record(true)
	d := block.WithPolicy(c, block.Policy{Discard: block.DiscardIgnore})
	caps := d.Caps()
	if caps.Discard || caps.DiscardZeroes || caps.ZeroUnmap {
		t.Fatalf("Caps %+v: discard ignore must clear Discard, DiscardZeroes and ZeroUnmap", caps)
	}
	if info, err := d.Info(); err != nil || info.ZeroUnmapDeallocates {
		t.Fatalf("Info %+v, %v: ZeroUnmapDeallocates must be false", info, err)
	}
	if err := d.Discard(0, 1<<20, 0); err != nil {
		t.Fatal(err)
	}
	if err := d.Discard(1<<20-10, 20, 0); !errors.Is(err, block.ErrOutOfRange) {
		t.Fatalf("out-of-range discard: %v", err)
	}
	expect(t, f, 0x77, 0, 0)
	if err := d.WriteZeroes(4096, 8192, block.MayUnmap|block.FUA); err != nil {
		t.Fatal(err)
	}
	expect(t, f, 0x77, 4096, 8192)
	reqs := c.Requests()
	if len(reqs) != 1 || reqs[0].Op != count.WriteZeroes || reqs[0].Flags != block.FUA {
		t.Fatalf("node saw %+v, want one WriteZeroes with FUA and no MayUnmap", reqs)
	}

	ro := blocktest.FullCaps
	ro.Write, ro.Discard, ro.DiscardZeroes, ro.WriteZeroes, ro.FastZero, ro.ZeroUnmap, ro.FUA = false, false, false, false, false, false, false
	rd := block.WithPolicy(blocktest.NewFake(blocktest.FakeOptions{Size: 4096, Caps: ro}), block.Policy{})
	if err := rd.Discard(0, 4096, 0); !errors.Is(err, block.ErrReadOnly) {
		t.Fatalf("ignored discard on a read-only node: %v, want ErrReadOnly", err)
	}
}

func TestDetectZeroes(t *testing.T) {
	zeros := make([]byte, 8192)
	data := make([]byte, 8192)
	data[8191] = 1
	for _, tc := range []struct {
		p         block.Policy
		buf       []byte
		flags     block.Flags
		wantOp    count.Op
		wantFlags block.Flags
	}{
		{block.Policy{Discard: block.DiscardUnmap, DetectZeroes: block.DetectZeroesOn}, zeros, 0, count.WriteZeroes, 0},
		{block.Policy{Discard: block.DiscardUnmap, DetectZeroes: block.DetectZeroesOn}, zeros, block.FUA, count.WriteZeroes, block.FUA},
		{block.Policy{Discard: block.DiscardUnmap, DetectZeroes: block.DetectZeroesUnmap}, zeros, 0, count.WriteZeroes, block.MayUnmap},
		{block.Policy{Discard: block.DiscardIgnore, DetectZeroes: block.DetectZeroesUnmap}, zeros, block.FUA, count.WriteZeroes, block.FUA},
		{block.Policy{Discard: block.DiscardUnmap, DetectZeroes: block.DetectZeroesUnmap}, data, 0, count.Pwrite, 0},
		{block.Policy{Discard: block.DiscardIgnore, DetectZeroes: block.DetectZeroesOff}, zeros, block.FUA, count.Pwrite, block.FUA},
	} {
		f := blocktest.NewFake(blocktest.FakeOptions{Size: 1 << 20, Caps: blocktest.FullCaps})
		fill(t, f, 0x55)
		c := count.New(f)
		c.Record(true)
		d := block.WithPolicy(c, tc.p)
		if err := d.Pwrite(tc.buf, 4096, tc.flags); err != nil {
			t.Fatal(err)
		}
		reqs := c.Requests()
		if len(reqs) != 1 || reqs[0].Op != tc.wantOp || reqs[0].Flags != tc.wantFlags || reqs[0].Off != 4096 || reqs[0].Len != 8192 {
			t.Errorf("%+v, zero payload %v, flags %v: node saw %+v; want %v with flags %v",
				tc.p, block.IsZero(tc.buf), tc.flags, reqs, tc.wantOp, tc.wantFlags)
		}
		got := make([]byte, 8192)
		if err := f.Pread(got, 4096); err != nil || string(got) != string(tc.buf) {
			t.Errorf("%+v: content after write is wrong (%v)", tc.p, err)
		}
	}
}

// TestDetectZeroesFallsBack: a node that cannot zero natively still gets
// the zeros, as written bytes.
func TestDetectZeroesFallsBack(t *testing.T) {
	f := blocktest.NewFake(blocktest.FakeOptions{Size: 1 << 20, Caps: blocktest.FullCaps})
	fill(t, f, 0x55)
	c := count.New(f)
	c.Record(true)
	d := block.WithPolicy(errinject.New(c, errinject.Rule{Ops: errinject.WriteZeroes, Err: block.ErrNotSupported}),
		block.Policy{Discard: block.DiscardUnmap, DetectZeroes: block.DetectZeroesUnmap})
	if err := d.Pwrite(make([]byte, 4096), 8192, block.FUA); err != nil {
		t.Fatal(err)
	}
	expect(t, f, 0x55, 8192, 4096)
	reqs := c.Requests()
	if len(reqs) != 1 || reqs[0].Op != count.Pwrite || reqs[0].Flags != block.FUA {
		t.Fatalf("node saw %+v, want the zeros written with FUA", reqs)
	}
}

func TestPolicyValidate(t *testing.T) {
	for _, tc := range []struct {
		p  block.Policy
		ok bool
	}{
		{block.Policy{}, true},
		{block.Policy{Discard: block.DiscardUnmap, DetectZeroes: block.DetectZeroesUnmap}, true},
		{block.Policy{Discard: block.DiscardIgnore, DetectZeroes: block.DetectZeroesOn}, true},
		{block.Policy{Discard: block.DiscardIgnore, DetectZeroes: block.DetectZeroesUnmap}, false},
		{block.Policy{Discard: 7}, false},
		{block.Policy{DetectZeroes: -1}, false},
	} {
		err := tc.p.Validate()
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, block.ErrInvalid)) {
			t.Errorf("%+v.Validate() = %v, want ok=%v", tc.p, err, tc.ok)
		}
	}
}

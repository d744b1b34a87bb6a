package image

import (
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/protocol/mem"
)

// recorder is a node that records the flags of each mutating call and
// counts flushes.
type recorder struct {
	block.Driver
	flags   []block.Flags
	flushes int
}

func (r *recorder) Pwrite(p []byte, off int64, f block.Flags) error {
	r.flags = append(r.flags, f)
	return r.Driver.Pwrite(p, off, f)
}
func (r *recorder) WriteZeroes(off, n int64, f block.Flags) error {
	r.flags = append(r.flags, f)
	return r.Driver.WriteZeroes(off, n, f)
}
func (r *recorder) Discard(off, n int64, f block.Flags) error {
	r.flags = append(r.flags, f)
	return r.Driver.Discard(off, n, f)
}
func (r *recorder) Flush() error { r.flushes++; return nil }

func TestCacheModes(t *testing.T) {
	for _, c := range []struct {
		mode string
		want cacheMode
	}{
		{"", cacheMode{}}, {"writeback", cacheMode{}}, {"none", cacheMode{direct: true}},
		{"writethrough", cacheMode{writethrough: true}},
		{"directsync", cacheMode{direct: true, writethrough: true}},
		{"unsafe", cacheMode{noFlush: true}},
	} {
		got, err := parseCache(c.mode)
		if err != nil || got != c.want {
			t.Errorf("parseCache(%q) = %+v, %v; want %+v", c.mode, got, err, c.want)
		}
	}

	r := &recorder{Driver: mem.New(1 << 20)}
	wt := writethrough{wrapper{r}}
	wt.Pwrite(make([]byte, 512), 0, 0)
	wt.WriteZeroes(0, 512, block.MayUnmap)
	wt.Discard(0, 512, 0)
	for i, f := range r.flags {
		if !f.Has(block.FUA) {
			t.Errorf("writethrough call %d: flags %b lack FUA", i, f)
		}
	}
	if !r.flags[1].Has(block.MayUnmap) {
		t.Error("writethrough dropped MayUnmap")
	}

	r = &recorder{Driver: mem.New(1 << 20)}
	nf := noFlush{wrapper{r}}
	nf.Pwrite(make([]byte, 512), 0, block.FUA)
	nf.WriteZeroes(0, 512, block.FUA|block.MayUnmap)
	if err := nf.Flush(); err != nil {
		t.Fatal(err)
	}
	if r.flushes != 0 {
		t.Error("unsafe mode flushed")
	}
	for i, f := range r.flags {
		if f.Has(block.FUA) {
			t.Errorf("unsafe call %d passed FUA", i)
		}
	}
	if nf.Caps().Flush {
		t.Error("unsafe mode claims a cache to flush")
	}
	if _, ok := block.As[*recorder](nf); !ok {
		t.Error("block.As does not see through the cache wrapper")
	}
}

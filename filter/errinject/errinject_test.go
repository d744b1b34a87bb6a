package errinject_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/block/blocktest"
	"github.com/thinblk/thinblk/filter/errinject"
	"github.com/thinblk/thinblk/protocol/mem"
)

func TestNoRulesConforms(t *testing.T) {
	blocktest.Run(t, func(t *testing.T, size int64) block.Driver {
		return errinject.New(mem.New(size))
	}, blocktest.Options{Ops: 300})
}

// TestCheckNoticesInjectedErrors: the conformance suite must fail on a node
// whose writes fail in some range.
func TestCheckNoticesInjectedErrors(t *testing.T) {
	d := errinject.New(mem.New(4<<20), errinject.Rule{Ops: errinject.Writes, Off: 1 << 20, Len: 1 << 20, Skip: 3})
	if _, err := blocktest.Check(d, blocktest.Options{Seed: 7}, nil); err == nil {
		t.Fatal("Check passed a node with failing writes")
	}
}

func TestRules(t *testing.T) {
	boom := errors.New("boom")
	d := errinject.New(mem.New(1<<20),
		errinject.Rule{Ops: errinject.Pwrite, Off: 4096, Len: 4096, Err: boom, Skip: 1, Times: 2},
		errinject.Rule{Ops: errinject.WriteZeroes, Flags: block.NoFallback, Err: block.ErrNotSupported},
		errinject.Rule{Ops: errinject.Flush, Times: 1},
	)
	buf := bytes.Repeat([]byte{7}, 512)
	// Outside the range: passes.
	if err := d.Pwrite(buf, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := d.Pwrite(buf, 8192, 0); err != nil {
		t.Fatal(err)
	}
	// Overlapping the range: first one skipped, then two failures, then passes.
	for i, want := range []error{nil, boom, boom, nil} {
		err := d.Pwrite(buf, 4096-256, 0)
		if !errors.Is(err, want) && !(want == nil && err == nil) {
			t.Fatalf("write %d: got %v, want %v", i, err, want)
		}
		var oe *block.OpError
		if want != nil && (!errors.As(err, &oe) || oe.Op != "pwrite" || oe.Off != 4096-256) {
			t.Fatalf("write %d: want an OpError for pwrite at 3840, got %#v", i, err)
		}
	}
	if got := d.Injected(); got != 2 {
		t.Fatalf("Injected() = %d, want 2", got)
	}
	// Flag match: WriteZeroes fails only with NoFallback.
	if err := d.WriteZeroes(0, 4096, block.NoFallback); !errors.Is(err, block.ErrNotSupported) {
		t.Fatalf("write-zeroes no-fallback: %v", err)
	}
	if err := d.WriteZeroes(0, 4096, 0); err != nil {
		t.Fatalf("write-zeroes: %v", err)
	}
	// ZeroRange falls back to writing zeros only without NoFallback.
	if err := d.Pwrite(buf, 16384, 0); err != nil {
		t.Fatal(err)
	}
	if err := block.ZeroRange(d, 16384, 512, block.NoFallback); !errors.Is(err, block.ErrNotSupported) {
		t.Fatalf("ZeroRange no-fallback: %v", err)
	}
	got := make([]byte, 512)
	if err := d.Pread(got, 16384); err != nil || !bytes.Equal(got, buf) {
		t.Fatalf("failed no-fallback zeroing changed data: %v", err)
	}
	// Flush fails once.
	if err := d.Flush(); !errors.Is(err, errinject.ErrInjected) {
		t.Fatalf("flush: %v", err)
	}
	if err := d.Flush(); err != nil {
		t.Fatalf("second flush: %v", err)
	}
	d.Clear()
	if err := d.WriteZeroes(0, 4096, block.NoFallback); err != nil {
		t.Fatalf("after Clear: %v", err)
	}
}

func TestAfterCarriesOut(t *testing.T) {
	m := mem.New(1 << 20)
	d := errinject.New(m, errinject.Rule{Ops: errinject.Pwrite, After: true})
	buf := bytes.Repeat([]byte{9}, 4096)
	if err := d.Pwrite(buf, 0, 0); !errors.Is(err, errinject.ErrInjected) {
		t.Fatalf("got %v", err)
	}
	got := make([]byte, 4096)
	if err := m.Pread(got, 0); err != nil || !bytes.Equal(got, buf) {
		t.Fatalf("After rule did not carry the write out: %v", err)
	}
	// Without After, the request never reaches the node.
	d = errinject.New(m, errinject.Rule{Ops: errinject.Discard | errinject.WriteZeroes})
	if err := d.WriteZeroes(0, 4096, 0); err == nil {
		t.Fatal("write-zeroes passed")
	}
	if err := m.Pread(got, 0); err != nil || !bytes.Equal(got, buf) {
		t.Fatal("a failed write-zeroes changed the data")
	}
}

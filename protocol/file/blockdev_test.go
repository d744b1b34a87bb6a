package file

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/internal/testutil"
)

// TestLoopDevice drives a loop device over a sparse file and checks that
// BLKZEROOUT, unmapping write-zeroes and BLKDISCARD reach the backing file,
// and what the node promises about them.
func TestLoopDevice(t *testing.T) {
	const mib = 1 << 20
	backing := filepath.Join(t.TempDir(), "loop.img")
	if err := Create(backing, 16*mib, PreallocOff); err != nil {
		t.Fatal(err)
	}
	dev := testutil.LoopDevice(t, backing)
	n, err := Open(dev, Options{Discard: true})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()

	if n.Size() != 16*mib {
		t.Fatalf("device size %d", n.Size())
	}
	c, l := n.Caps(), n.Limits()
	if !c.Write || !c.Discard || c.DiscardZeroes || !c.WriteZeroes || !c.FastZero || !c.ZeroUnmap || c.BlockStatus {
		t.Errorf("loop caps %+v", c)
	}
	if l.RequestAlign != 512 || l.DiscardGranularity < 512 || l.MaxDiscard <= 0 {
		t.Errorf("loop limits %+v", l)
	}
	info, err := n.Info()
	if err != nil {
		t.Fatal(err)
	}
	if info.Format != "host_device" || info.VirtualSize != 16*mib {
		t.Errorf("loop info %+v", info)
	}

	data := pattern(16*mib, 4)
	if err := n.Pwrite(data, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := n.Flush(); err != nil {
		t.Fatal(err)
	}
	full := testutil.HostBytes(t, backing)
	if full < 16*mib {
		t.Fatalf("backing file has %d bytes allocated after a full write", full)
	}

	// BLKZEROOUT: the loop driver zeroes the backing range with
	// ZERO_RANGE (no unmap), so the blocks stay allocated but SEEK_DATA
	// sees unwritten extents.
	if err := n.WriteZeroes(2*mib, 2*mib, block.NoFallback); err != nil {
		t.Fatal(err)
	}
	// With MayUnmap the device may deallocate: the loop driver punches.
	if err := n.WriteZeroes(6*mib, 2*mib, block.MayUnmap|block.NoFallback); err != nil {
		t.Fatal(err)
	}
	// BLKDISCARD: the loop driver punches too.
	if err := n.Discard(10*mib, 2*mib, block.FUA); err != nil {
		t.Fatal(err)
	}
	// Unaligned write-zeroes: exact zeros, but not without fallback.
	if err := n.WriteZeroes(13*mib+100, 1000, block.NoFallback); !errors.Is(err, block.ErrNotSupported) {
		t.Errorf("unaligned write-zeroes with NoFallback: %v", err)
	}
	if err := n.WriteZeroes(13*mib+100, 1000, 0); err != nil {
		t.Fatal(err)
	}
	if err := n.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := testutil.HostBytes(t, backing); got < full-4*mib || got > full-4*mib+64<<10 {
		t.Errorf("backing allocation %d, want %d (2 MiB unmapped by write-zeroes, 2 MiB discarded)", got, full-4*mib)
	}
	bf, err := Open(backing, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bf.Close()
	// BLKZEROOUT keeps the storage (an anchored unwritten extent); the
	// unmapping write-zeroes and BLKDISCARD leave holes.
	for _, r := range []struct {
		start, end int64
		want       block.Status
	}{{2 * mib, 4 * mib, block.Zero | block.Allocated}, {6 * mib, 8 * mib, block.Zero}, {10 * mib, 12 * mib, block.Zero}} {
		e, err := bf.BlockStatus(r.start, r.end-r.start)
		if err != nil {
			t.Fatal(err)
		}
		if e.Status != r.want || e.Len != r.end-r.start {
			t.Errorf("backing file at %d: %+v, want status %v", r.start, e, r.want)
		}
	}

	clear(data[2*mib : 4*mib])
	clear(data[6*mib : 8*mib])
	clear(data[13*mib+100 : 13*mib+1100])
	got := make([]byte, 16*mib)
	if err := n.Pread(got, 0); err != nil {
		t.Fatal(err)
	}
	// The discarded range may read as anything; compare around it.
	if !bytes.Equal(got[:10*mib], data[:10*mib]) || !bytes.Equal(got[12*mib:], data[12*mib:]) {
		t.Error("device contents differ after write-zeroes")
	}

	// BlockStatus of a device: everything is data.
	e, err := n.BlockStatus(0, 16*mib)
	if err != nil {
		t.Fatal(err)
	}
	if e.Status != block.Data|block.Allocated || e.Len != 16*mib || e.HostOffset != 0 {
		t.Errorf("device block status %+v", e)
	}
	if err := n.Truncate(32 * mib); !errors.Is(err, block.ErrNotSupported) {
		t.Errorf("truncate of a device: %v", err)
	}
}

// TestLoopDeviceNoDiscard: with discard off, Discard does nothing and
// MayUnmap does not unmap.
func TestLoopDeviceNoDiscard(t *testing.T) {
	const mib = 1 << 20
	backing := filepath.Join(t.TempDir(), "loop.img")
	if err := Create(backing, 4*mib, PreallocOff); err != nil {
		t.Fatal(err)
	}
	dev := testutil.LoopDevice(t, backing)
	n, err := Open(dev, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.Pwrite(pattern(4*mib, 7), 0, block.FUA); err != nil {
		t.Fatal(err)
	}
	full := testutil.HostBytes(t, backing)
	if err := n.Discard(0, 2*mib, 0); err != nil {
		t.Fatal(err)
	}
	if err := n.WriteZeroes(2*mib, 2*mib, block.MayUnmap); err != nil {
		t.Fatal(err)
	}
	if err := n.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := testutil.HostBytes(t, backing); got != full {
		t.Errorf("backing allocation went from %d to %d with discard off", full, got)
	}
	if c := n.Caps(); c.Discard || c.ZeroUnmap {
		t.Errorf("caps with discard off %+v", c)
	}
}

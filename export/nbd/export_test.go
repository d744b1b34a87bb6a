package nbd

import (
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/block/blocktest"
	"github.com/thinblk/thinblk/internal/nbdwire"
)

// TestTransmissionFlagsFromCaps: every advertised bit follows the node's
// Caps and the export's settings.
func TestTransmissionFlagsFromCaps(t *testing.T) {
	all := block.Caps{Write: true, Flush: true, FUA: true, Discard: true, DiscardZeroes: true,
		WriteZeroes: true, FastZero: true, ZeroUnmap: true, BlockStatus: true}
	const base = nbdwire.FlagHasFlags | nbdwire.FlagSendCache
	for _, tc := range []struct {
		name string
		caps block.Caps
		e    *Export
		want uint16
	}{
		{"read-only node", block.Caps{}, &Export{}, base | nbdwire.FlagReadOnly},
		{"read-only export", all, &Export{ReadOnly: true, Discard: block.DiscardUnmap}, base | nbdwire.FlagReadOnly},
		{"discard ignore", all, &Export{}, base | nbdwire.FlagSendFlush | nbdwire.FlagSendFUA |
			nbdwire.FlagSendWriteZeroes | nbdwire.FlagSendFastZero},
		{"discard unmap", all, &Export{Discard: block.DiscardUnmap, MultiConn: true}, base | nbdwire.FlagSendFlush |
			nbdwire.FlagSendFUA | nbdwire.FlagSendTrim | nbdwire.FlagSendWriteZeroes | nbdwire.FlagSendFastZero | nbdwire.FlagCanMultiConn},
		{"no cache, no native zero, no discard", block.Caps{Write: true}, &Export{Discard: block.DiscardUnmap},
			base | nbdwire.FlagSendWriteZeroes},
	} {
		e := tc.e
		e.Node = blocktest.NewFake(blocktest.FakeOptions{Size: 1 << 20, Caps: tc.caps})
		if got := e.TransmissionFlags(); got != tc.want {
			t.Errorf("%s: flags %#x, want %#x", tc.name, got, tc.want)
		}
	}
}

func TestBlockSizes(t *testing.T) {
	for _, tc := range []struct {
		l             block.Limits
		mn, pref, max uint32
	}{
		{block.Limits{}, 1, 4096, 32 << 20},
		{block.Limits{RequestAlign: 4096, MaxTransfer: 1 << 20}, 4096, 4096, 1 << 20},
		{block.Limits{RequestAlign: 512, OptimalTransfer: 65536}, 512, 65536, 32 << 20},
		{block.Limits{RequestAlign: 3}, 1, 4096, 32 << 20}, // not a power of two: not advertised
	} {
		e := &Export{Node: blocktest.NewFake(blocktest.FakeOptions{Size: 1 << 20, Limits: tc.l})}
		mn, pref, mx := e.BlockSizes()
		if mn != tc.mn || pref != tc.pref || mx != tc.max {
			t.Errorf("%+v: got %d/%d/%d, want %d/%d/%d", tc.l, mn, pref, mx, tc.mn, tc.pref, tc.max)
		}
	}
}

func TestErrno(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want uint32
	}{
		{&block.OpError{Op: "pwrite", Err: block.ErrReadOnly}, nbdwire.EPERM},
		{fmt.Errorf("x: %w", block.ErrNoSpace), nbdwire.ENOSPC},
		{fmt.Errorf("x: %w", syscall.EDQUOT), nbdwire.ENOSPC},
		{&block.OpError{Err: block.ErrNotSupported}, nbdwire.ENOTSUP},
		{&block.OpError{Err: block.ErrOutOfRange}, nbdwire.EINVAL},
		{block.ErrClosed, nbdwire.ESHUTDOWN},
		{errors.New("disk on fire"), nbdwire.EIO},
		{fmt.Errorf("remote: %w", nbdwire.Errno(nbdwire.EOVERFLOW)), nbdwire.EOVERFLOW},
	} {
		if got := Errno(tc.err); got != tc.want {
			t.Errorf("Errno(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

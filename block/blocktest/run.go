package blocktest

import (
	"testing"

	"github.com/thinblk/thinblk/block"
)

// Run runs the conformance suite ([Check]) on a node that open creates with
// o.Size bytes (default 4 MiB), logs the seed, fails t with the first broken
// promise and how to replay it, and closes the node at the end.
//
// When the node's RequestAlign is above 1 (and o.Align and o.NoAlignWrapper
// are unset), Run also runs a subtest "Align" on a second node wrapped in
// block.Align, with byte-aligned requests and a fifth of the operations.
//
// open may call t.Fatal; it is called once per (sub)test with that test's t.
func Run(t *testing.T, open func(t *testing.T, size int64) block.Driver, o Options) {
	t.Helper()
	if o.Size <= 0 {
		o.Size = defaultSize
	}
	if o.Seed == 0 {
		s, err := seedFromEnv()
		if err != nil {
			t.Fatal(err)
		}
		o.Seed = s
	}
	t.Logf("blocktest seed %d (replay with THINBLK_SEED=%d go test -run '^%s$')", o.Seed, o.Seed, t.Name())
	d := open(t, o.Size)
	align := d.Limits().RequestAlign
	runCheck(t, d, o)
	if o.NoAlignWrapper || o.Align > 0 || align <= 1 {
		return
	}
	t.Run("Align", func(t *testing.T) {
		d := block.Align(open(t, o.Size))
		ao := o
		ao.Align = 1
		ao.Ops = max(o.Ops, defaultOps) / 5
		ao.Reopen = nil // Reopen knows the unwrapped node only
		runCheck(t, d, ao)
	})
}

func runCheck(t *testing.T, d block.Driver, o Options) {
	t.Helper()
	final, err := Check(d, o, t.Logf)
	if final != nil {
		defer func() {
			if cerr := final.Close(); cerr != nil {
				t.Errorf("Close: %v", cerr)
			}
		}()
	}
	if err != nil {
		t.Fatalf("%v\n(go test -run '^%s$' with THINBLK_SEED=%d)", err, t.Name(), o.Seed)
	}
}

package tool

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/thinblk/thinblk/internal/testutil"
	"github.com/thinblk/thinblk/internal/workload"
)

func TestDD(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "w.raw")
	spec := workload.Spec{Size: 32 << 20, Data: 4 << 20, Zero: 1 << 20, Seed: 9}
	if err := workload.Create(src, spec); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args     []string
		from, to int64
	}{
		{[]string{"bs=1M", "skip=3"}, 3 << 20, 32 << 20},
		{[]string{"bs=4k", "skip=10", "count=5"}, 40 << 10, 60 << 10},
		{[]string{"count=100"}, 0, 51200},
		{[]string{"bs=1M", "count=1000"}, 0, 32 << 20},
	}
	for _, c := range cases {
		out := filepath.Join(dir, "out.raw")
		var o DDOptions
		if err := ParseDDOperands(append(c.args, "if="+src, "of="+out), &o); err != nil {
			t.Fatal(err)
		}
		o.Format = "raw"
		if err := DD(o); err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want[c.from:c.to]) {
			t.Fatalf("%v: output of %d bytes differs from input bytes %d-%d", c.args, len(got), c.from, c.to)
		}
		if c.from == 0 && c.to == spec.Size && testutil.HostBytes(t, out) > testutil.HostBytes(t, src) {
			t.Errorf("%v: output occupies more than the input (%d > %d)", c.args, testutil.HostBytes(t, out), testutil.HostBytes(t, src))
		}
	}
	for _, bad := range [][]string{{"if=" + src}, {"bs=0", "if=a", "of=b"}, {"seek=1", "if=a", "of=b"}, {"junk"}} {
		var o DDOptions
		if err := ParseDDOperands(bad, &o); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	var o DDOptions
	if err := ParseDDOperands([]string{"bs=1M", "skip=40", "if=" + src, "of=" + filepath.Join(dir, "x")}, &o); err != nil {
		t.Fatal(err)
	}
	if err := DD(o); err == nil {
		t.Error("skip past the end accepted")
	}
}

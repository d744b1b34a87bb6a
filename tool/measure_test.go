package tool

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/internal/testutil"
	"github.com/thinblk/thinblk/internal/workload"
)

// TestMeasureMatchesQemuImg compares thinblk measure's output with
// qemu-img measure's, byte for byte, for new images and existing ones.
func TestMeasureMatchesQemuImg(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	dir := t.TempDir()
	raw := filepath.Join(dir, "w.raw")
	if err := workload.Create(raw, workload.Spec{Size: 64 << 20, Data: 8 << 20, Zero: 2 << 20, Seed: 5}); err != nil {
		t.Fatal(err)
	}
	q := filepath.Join(dir, "w.qcow2")
	testutil.MustRun(t, "qemu-img", "convert", "-O", "qcow2", raw, q)
	top := filepath.Join(dir, "top.qcow2")
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", q, "-F", "qcow2", top)
	testutil.MustRun(t, "qemu-io", "-f", "qcow2", "-c", "write -P 3 40M 5M", "-c", "write -z 1M 3M", top)
	cases := []string{
		"--size 1G -O qcow2",
		"--size 1000",
		"--output=json --size 10G -O qcow2",
		"--size 100G -O qcow2 -o cluster_size=4k,refcount_bits=1",
		"--size 1T -O qcow2 -o cluster_size=2M,extended_l2=on",
		"--size 3G -O qcow2 -o compat=0.10",
		"-O qcow2 " + raw,
		"--output=json -O qcow2 " + q,
		"-O qcow2 " + q,
		"-O qcow2 -o compat=0.10 " + q,
		"-O raw " + q,
		"-O qcow2 " + top,
		"--output=json -O qcow2 -o cluster_size=512 " + top,
		"-O qcow2 -o preallocation=falloc " + raw,
		"-O qcow2 -o backing_file=" + q + " " + raw,
	}
	for _, c := range cases {
		want := testutil.MustRun(t, "qemu-img", append([]string{"measure"}, strings.Fields(c)...)...)
		o := MeasureOptions{Size: -1, Options: map[string]string{}}
		f := strings.Fields(c)
		for i := 0; i < len(f); i++ {
			switch {
			case f[i] == "--size":
				i++
				v, err := ParseSize(f[i])
				if err != nil {
					t.Fatal(err)
				}
				o.Size = v
			case f[i] == "-O":
				i++
				o.OutFormat = f[i]
			case f[i] == "-o":
				i++
				for _, kv := range strings.Split(f[i], ",") {
					k, v, _ := strings.Cut(kv, "=")
					o.Options[k] = v
				}
			case strings.HasPrefix(f[i], "--output="):
				o.Output = strings.TrimPrefix(f[i], "--output=")
			default:
				o.File = f[i]
			}
		}
		var out bytes.Buffer
		if err := Measure(&out, o); err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		if out.String() != want {
			t.Errorf("measure %s:\nthinblk:\n%sqemu-img:\n%s", c, out.String(), want)
		}
	}
	if err := Measure(&bytes.Buffer{}, MeasureOptions{Size: 1 << 50, OutFormat: "qcow2", Options: map[string]string{"cluster_size": "4k"}}); err == nil {
		t.Error("an image too large for 4k clusters was measured")
	}
}

package qcow2

import (
	"encoding/json"
	"math/rand"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/internal/testutil"
)

// TestCreateOptions creates images with every option, checks them with
// qemu-img check and info, writes into them and checks again.
func TestCreateOptions(t *testing.T) {
	testutil.NeedTool(t, "qemu-img")
	dir := t.TempDir()
	base := filepath.Join(dir, "base.raw")
	if err := image.Create(base, "raw", image.CreateOptions{Size: 3 << 20}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		opts map[string]string
		back bool
		info map[string]any // expected format-specific fields
	}{
		{"default", nil, false, map[string]any{"compat": "1.1", "refcount-bits": 16.0}},
		{"v2", map[string]string{"compat": "0.10"}, false, map[string]any{"compat": "0.10"}},
		{"c512-rb64", map[string]string{"cluster_size": "512", "refcount_bits": "64"}, false, map[string]any{"refcount-bits": 64.0}},
		{"c2M-rb1", map[string]string{"cluster_size": "2M", "refcount_bits": "1"}, false, map[string]any{"refcount-bits": 1.0}},
		{"lazy", map[string]string{"lazy_refcounts": "on"}, false, map[string]any{"lazy-refcounts": true}},
		{"extl2", map[string]string{"extended_l2": "on"}, false, map[string]any{"extended-l2": true}},
		{"zstd", map[string]string{"compression_type": "zstd"}, false, map[string]any{"compression-type": "zstd"}},
		{"meta", map[string]string{"preallocation": "metadata"}, false, nil},
		{"falloc", map[string]string{"preallocation": "falloc"}, false, nil},
		{"full", map[string]string{"preallocation": "full", "cluster_size": "4096"}, false, nil},
		{"backing", nil, true, nil},
		{"backing-v2", map[string]string{"compat": "0.10"}, true, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			name := filepath.Join(dir, c.name+".qcow2")
			co := image.CreateOptions{Size: 3<<20 + 512, Options: c.opts}
			if c.back {
				co.Size = 0
				co.Backing = "base.raw"
			}
			if err := image.Create(name, "qcow2", co); err != nil {
				t.Fatal(err)
			}
			mustBeClean(t, name)
			var info struct {
				VirtualSize     int64  `json:"virtual-size"`
				BackingFilename string `json:"backing-filename"`
				BackingFormat   string `json:"backing-filename-format"`
				FormatSpecific  struct {
					Data map[string]any `json:"data"`
				} `json:"format-specific"`
			}
			if err := json.Unmarshal([]byte(run(t, "qemu-img", "info", "--output=json", name)), &info); err != nil {
				t.Fatal(err)
			}
			if c.back {
				if info.BackingFilename != "base.raw" || info.BackingFormat != "raw" || info.VirtualSize != 3<<20 {
					t.Fatalf("backing: %+v", info)
				}
			} else if info.VirtualSize != 3<<20+512 {
				t.Fatalf("virtual size %d", info.VirtualSize)
			}
			for k, v := range c.info {
				if info.FormatSpecific.Data[k] != v {
					t.Fatalf("info %s = %v, want %v (%v)", k, info.FormatSpecific.Data[k], v, info.FormatSpecific.Data)
				}
			}
			// Write, then check again and compare with qemu's reading.
			d := openPath(t, name, false)
			r := rand.New(rand.NewSource(1))
			want := make([]byte, d.Size())
			for range 20 {
				off := r.Int63n(d.Size() - 70000)
				p := randBytes(r, 1+r.Intn(70000))
				if err := d.Pwrite(p, off, 0); err != nil {
					t.Fatal(err)
				}
				copy(want[off:], p)
			}
			if err := d.WriteZeroes(0, 100000, block.MayUnmap); err != nil {
				t.Fatal(err)
			}
			clear(want[:100000])
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			mustBeClean(t, name)
			mustEqual(t, qemuRaw(t, name), want, "content")
		})
	}
}

func TestCreateRejects(t *testing.T) {
	for _, opts := range []map[string]string{
		{"cluster_size": "1000"},
		{"cluster_size": "4M"},
		{"compat": "0.9"},
		{"refcount_bits": "3"},
		{"compat": "0.10", "refcount_bits": "64"},
		{"compat": "0.10", "lazy_refcounts": "on"},
		{"extended_l2": "on", "cluster_size": "4096"},
		{"preallocation": "sometimes"},
		{"bogus": "1"},
	} {
		_, err := ParseCreateOptions(image.CreateOptions{Size: 1 << 20, Options: opts})
		if err == nil || !strings.Contains(err.Error(), "qcow2") {
			t.Errorf("%v: err = %v, want a qcow2 error", opts, err)
		}
	}
}

package qcow2

import (
	"bytes"
	"math/rand"
	"path/filepath"
	"testing"

	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/internal/testutil"
)

// TestWriteCompressed writes compressible and incompressible clusters with
// WriteCompressed (zlib and zstd), then overwrites some partially, and
// checks the result with qemu-img (check, convert).
func TestWriteCompressed(t *testing.T) {
	testutil.NeedTool(t, "qemu-img")
	for _, ct := range []string{"zlib", "zstd"} {
		for _, cs := range []string{"4096", "65536"} {
			t.Run(ct+"-"+cs, func(t *testing.T) {
				name := filepath.Join(t.TempDir(), "c.qcow2")
				size := int64(2<<20 + 1024)
				if err := image.Create(name, "qcow2", image.CreateOptions{Size: size, Options: map[string]string{"compression_type": ct, "cluster_size": cs}}); err != nil {
					t.Fatal(err)
				}
				img := openPath(t, name, false).(*Image)
				r := rand.New(rand.NewSource(3))
				want := make([]byte, size)
				c := img.clusterSize
				for off := int64(0); off < size; off += c {
					n := min(c, size-off)
					var p []byte
					switch r.Intn(3) {
					case 0:
						p = randBytes(r, int(n))
					case 1:
						p = bytes.Repeat([]byte{byte(r.Intn(256)), 1, 2, 3}, int(n/4)+1)[:n]
					default:
						p = make([]byte, n)
						copy(p, "a little text and then zeros")
					}
					if err := img.WriteCompressed(p, off); err != nil {
						t.Fatalf("write compressed at %d: %v", off, err)
					}
					copy(want[off:], p)
				}
				mustEqual(t, readAll(t, img), want, "read back")
				// Partial overwrites copy compressed clusters.
				for range 10 {
					off := r.Int63n(size - 5000)
					p := randBytes(r, 1+r.Intn(5000))
					if err := img.Pwrite(p, off, 0); err != nil {
						t.Fatal(err)
					}
					copy(want[off:], p)
				}
				if err := img.Close(); err != nil {
					t.Fatal(err)
				}
				mustBeClean(t, name)
				mustEqual(t, qemuRaw(t, name), want, "qemu-img convert")
			})
		}
	}
}

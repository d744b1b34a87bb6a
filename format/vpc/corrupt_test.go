package vpc

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/protocol/mem"
)

// TestCorruptHeaders: truncated and corrupted images give errors that
// wrap block.ErrCorrupt (or ErrNotSupported) and say what is wrong.
func TestCorruptHeaders(t *testing.T) {
	data := make([]byte, 4096)
	good := buildDynamic(64<<10, 4096, map[int64]testBlock{2: {[]byte{0xff}, data}}, "", nil)
	fixed := append(make([]byte, 8192), fixedFooter(CreateParams{Size: 8192, ForceSize: true}).encode()...)
	be32 := func(b []byte, at int, v uint32) { binary.BigEndian.PutUint32(b[at:], v) }
	be64 := func(b []byte, at int, v uint64) { binary.BigEndian.PutUint64(b[at:], v) }
	for _, tc := range []struct {
		name   string
		base   []byte
		mutate func(b []byte) []byte
		fix    bool   // recompute checksums after mutate
		want   string // in the message
		sent   error
	}{
		{"empty", good, func(b []byte) []byte { return nil }, false, "too small", block.ErrCorrupt},
		{"truncated footer", good, func(b []byte) []byte { return b[:300] }, false, "too small", block.ErrCorrupt},
		{"not a VHD", good, func(b []byte) []byte { return make([]byte, 4096) }, false, "no VHD footer", block.ErrCorrupt},
		{"footer checksum", fixed, func(b []byte) []byte { b[len(b)-footerSize+50] ^= 1; return b }, false, "footer checksum", block.ErrCorrupt},
		{"disk type", good, func(b []byte) []byte { be32(b, 60, 9); be32(b, len(b)-footerSize+60, 9); return b }, true, "disk type 9", block.ErrNotSupported},
		{"fixed bigger than file", fixed, func(b []byte) []byte {
			f := b[len(b)-footerSize:]
			be64(f, 48, 1<<40)
			copy(f[28:], "qem2")
			return b
		}, true, "fixed image of", block.ErrCorrupt},
		{"header past EOF", good, func(b []byte) []byte { be64(b, 16, 1<<50); be64(b, len(b)-footerSize+16, 1<<50); return b }, true, "dynamic header at", block.ErrCorrupt},
		{"header cookie", good, func(b []byte) []byte { b[footerSize] = 'X'; return b }, true, "cookie", block.ErrCorrupt},
		{"header checksum", good, func(b []byte) []byte { b[footerSize+30] ^= 1; return b }, false, "dynamic header checksum", block.ErrCorrupt},
		{"huge BAT", good, func(b []byte) []byte { be32(b, footerSize+28, 0xffffffff); return b }, true, "does not fit", block.ErrCorrupt},
		{"BAT past EOF", good, func(b []byte) []byte { be64(b, footerSize+16, 1<<40); return b }, true, "does not fit", block.ErrCorrupt},
		{"block size", good, func(b []byte) []byte { be32(b, footerSize+32, 3000); return b }, true, "block size 3000", block.ErrCorrupt},
		{"BAT too small", good, func(b []byte) []byte { be32(b, footerSize+28, 2); return b }, true, "cannot map", block.ErrCorrupt},
		{"block past EOF", good, func(b []byte) []byte { be32(b, footerSize+dynHeaderSize+4*3, 1<<30); return b }, true, "does not fit", block.ErrCorrupt},
		{"locator past EOF", good, func(b []byte) []byte {
			be32(b, 60, diskDifferencing)
			be32(b, len(b)-footerSize+60, diskDifferencing)
			loc := footerSize + 576
			copy(b[loc:], "W2ru")
			be32(b, loc+8, 100)
			be64(b, loc+16, 1<<40)
			return b
		}, true, "parent locator 0", block.ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.mutate(append([]byte(nil), tc.base...))
			if tc.fix {
				fixChecksums(b)
			}
			node := mem.New(int64(len(b)))
			if err := node.Pwrite(b, 0, 0); err != nil {
				t.Fatal(err)
			}
			noParent := func(string, string) (block.Driver, error) { return nil, errors.New("no parent") }
			img, err := Open(node, image.FormatOpen{Name: "bad", ReadOnly: true, OpenBacking: noParent})
			if err == nil {
				// Some corruption only shows when the data is read.
				buf := make([]byte, img.Size())
				err = img.Pread(buf, 0)
				img.Close()
			}
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, tc.sent) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q: want %v with %q", err, tc.sent, tc.want)
			}
		})
	}
}

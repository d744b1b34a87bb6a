package vhdx

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/protocol/mem"
)

func openBytes(b []byte, o image.FormatOpen) (*Image, error) {
	node := mem.New(int64(len(b)))
	if err := node.Pwrite(b, 0, 0); err != nil {
		return nil, err
	}
	return Open(node, o)
}

// TestFuzzTemplatesOpen: the fuzz templates are valid images (so the
// fuzzer starts from images that get past parsing).
func TestFuzzTemplatesOpen(t *testing.T) {
	for i, b := range fuzzTemplates(t) {
		img, err := openBytes(b, image.FormatOpen{ReadOnly: true, NoBacking: true, Options: map[string]string{"replay-log": "on"}})
		if err != nil {
			t.Fatalf("template %d: %v", i, err)
		}
		// Template 0: block 0; template 1: sector 2049; template 2: block
		// 1 past its first 8 KiB (mapped by the log).
		at := []int64{0, mib + 512, mib + 8192}[i]
		e, err := img.BlockStatus(at, 512)
		if err != nil || e.Status != block.Data|block.Allocated {
			t.Fatalf("template %d: block status %+v %v", i, e, err)
		}
		img.Close()
	}
}

// TestCorruptHeaders: truncated and corrupted images give errors that
// wrap block.ErrCorrupt (or ErrNotSupported) and say what is wrong.
func TestCorruptHeaders(t *testing.T) {
	good := fuzzTemplates(t)[0]
	le16 := func(b []byte, at int, v uint16) { binary.LittleEndian.PutUint16(b[at:], v) }
	le32 := func(b []byte, at int, v uint32) { binary.LittleEndian.PutUint32(b[at:], v) }
	le64 := func(b []byte, at int, v uint64) { binary.LittleEndian.PutUint64(b[at:], v) }
	img0, err := openBytes(good, image.FormatOpen{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	batOff := int(img0.batStart)
	img0.Close()
	_, meta, err := readRegions(func() block.Driver { n := mem.New(int64(len(good))); n.Pwrite(good, 0, 0); return n }())
	if err != nil {
		t.Fatal(err)
	}
	metaOff := int(meta.Offset)
	for _, tc := range []struct {
		name   string
		mutate func(b []byte) []byte
		fix    bool
		want   string
		sent   error
	}{
		{"empty", func(b []byte) []byte { return nil }, false, "too small", block.ErrCorrupt},
		{"truncated", func(b []byte) []byte { return b[:200<<10] }, false, "too small", block.ErrCorrupt},
		{"signature", func(b []byte) []byte { b[0] = 'X'; return b }, false, "file signature", block.ErrCorrupt},
		{"both headers bad", func(b []byte) []byte { b[header1Offset+9] ^= 1; b[header2Offset+9] ^= 1; return b }, false, "no valid header", block.ErrCorrupt},
		{"header version", func(b []byte) []byte { le16(b, header1Offset+66, 2); le16(b, header2Offset+66, 2); return b }, true, "header version 2", block.ErrNotSupported},
		{"dirty log", func(b []byte) []byte { b[header2Offset+50] = 1; return b }, true, "log to replay", block.ErrNotSupported},
		{"both region tables bad", func(b []byte) []byte { b[region1Offset+40] ^= 1; b[region2Offset+40] ^= 1; return b }, false, "no valid region table", block.ErrCorrupt},
		{"region count", func(b []byte) []byte { le32(b, region1Offset+8, 1<<30); le32(b, region2Offset+8, 1<<30); return b }, true, "entries", block.ErrCorrupt},
		{"region past EOF", func(b []byte) []byte {
			le64(b, region1Offset+16+16, 1<<40)
			le64(b, region2Offset+16+16, 1<<40)
			return b
		}, true, "does not fit", block.ErrCorrupt},
		{"unknown required region", func(b []byte) []byte {
			for _, r := range []int{region1Offset, region2Offset} {
				le32(b, r+8, 3)
				e := r + 16 + 64
				g := mustGUID("11111111-2222-3333-4444-555555555555")
				copy(b[e:], g[:])
				le64(b, e+16, mib)
				le32(b, e+24, mib)
				le32(b, e+28, 1)
			}
			return b
		}, true, "unknown required region", block.ErrNotSupported},
		{"metadata signature", func(b []byte) []byte { b[metaOff] = 'X'; return b }, false, "metadata table signature", block.ErrCorrupt},
		{"metadata count", func(b []byte) []byte { le16(b, metaOff+10, 60000); return b }, false, "metadata entries", block.ErrCorrupt},
		{"metadata item outside", func(b []byte) []byte { le32(b, metaOff+32+16, 0xfffffff0); return b }, false, "outside the region", block.ErrCorrupt},
		{"block size", func(b []byte) []byte { le32(b, metaOff+64<<10, 3<<20); return b }, false, "block size", block.ErrCorrupt},
		{"sector size", func(b []byte) []byte { le32(b, metaOff+64<<10+32, 1000); return b }, false, "logical sector size 1000", block.ErrCorrupt},
		{"virtual size", func(b []byte) []byte { le64(b, metaOff+64<<10+8, 1<<60); return b }, false, "virtual size", block.ErrCorrupt},
		{"BAT too small", func(b []byte) []byte { le64(b, metaOff+64<<10+8, 1<<40); return b }, false, "too small", block.ErrCorrupt},
		{"block past EOF", func(b []byte) []byte { le64(b, batOff+8, makeEntry(payloadFullyPresent, 1<<40)); return b }, false, "does not fit", block.ErrCorrupt},
		{"bad BAT state", func(b []byte) []byte { le64(b, batOff+8, 5); return b }, false, "BAT state 5", block.ErrCorrupt},
		{"partial without parent", func(b []byte) []byte { le64(b, batOff+8, makeEntry(payloadPartiallyPresent, 4*mib)); return b }, false, "without a parent", block.ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.mutate(append([]byte(nil), good...))
			if tc.fix {
				fixCRCs(b)
			}
			img, err := openBytes(b, image.FormatOpen{ReadOnly: true, OpenBacking: func(string, string) (block.Driver, error) { return nil, errors.New("no parent") }})
			if err == nil {
				buf := make([]byte, min(img.Size(), 4<<20))
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

package vhdx

import (
	"encoding/binary"
	"errors"
	"sync"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/protocol/mem"
)

var (
	templatesOnce sync.Once
	templates     [3][]byte // dynamic, differencing, dirty log
)

// fuzzTemplates builds two small valid images (a VHDX is at least 4 MiB,
// too big to mutate byte by byte): a dynamic one with a fully present and
// a zero block, and a differencing one with a partially present block.
func fuzzTemplates(t testing.TB) [3][]byte {
	templatesOnce.Do(func() {
		data := make([]byte, mib)
		for i := range data {
			data[i] = byte(i * 7)
		}
		b, g, batOff := buildImage(t, CreateParams{Size: 4 << 20, BlockSize: mib, LogSize: mib, Subformat: "dynamic"})
		b, at := appendBlock(b, data)
		setEntry(b, batOff, g.payloadIndex(0), makeEntry(payloadFullyPresent, at))
		setEntry(b, batOff, g.payloadIndex(2), makeEntry(payloadZero, 0))
		templates[0] = b

		b, g, batOff = buildImage(t, CreateParams{Size: 3 << 20, BlockSize: mib, LogSize: mib, Subformat: "dynamic", parent: `.\p.vhdx`})
		b, at = appendBlock(b, data)
		setEntry(b, batOff, g.payloadIndex(1), makeEntry(payloadPartiallyPresent, at))
		bitmap := make([]byte, bitmapBlock)
		for i := 256; i < 512; i++ {
			bitmap[i] = 0x5a
		}
		b, at = appendBlock(b, bitmap)
		setEntry(b, batOff, g.bitmapIndex(0), makeEntry(bitmapPresent, at))
		templates[1] = b

		// A dirty log whose entry maps block 1 (replay-log reads it).
		b, g, batOff = buildImage(t, CreateParams{Size: 2 << 20, BlockSize: mib, LogSize: mib, Subformat: "dynamic"})
		b, at = appendBlock(b, data)
		batPage := append([]byte(nil), b[batOff:batOff+logSector]...)
		binary.LittleEndian.PutUint64(batPage[g.payloadIndex(1)*8:], makeEntry(payloadFullyPresent, at))
		logGUID := mustGUID("0a0b0c0d-1111-2222-3333-444455556666")
		copy(b[mib:], buildLogEntry(2, 0, logGUID, int64(len(b)), []testLogOp{{off: batOff, page: batPage}, {off: at, zero: 8192}}))
		h, _ := parseHeader(b[header2Offset:])
		h.LogGUID, h.SequenceNumber = logGUID, 9
		copy(b[header2Offset:], h.encode())
		templates[2] = b
	})
	return templates
}

// fixCRCs recomputes the checksums of both headers and region tables.
func fixCRCs(b []byte) {
	for _, at := range []int{header1Offset, header2Offset} {
		if len(b) >= at+headerSize {
			binary.LittleEndian.PutUint32(b[at+4:], crcWithout(b[at:at+headerSize], 4))
		}
	}
	for _, at := range []int{region1Offset, region2Offset} {
		if len(b) >= at+regionSize {
			binary.LittleEndian.PutUint32(b[at+4:], crcWithout(b[at:at+regionSize], 4))
		}
	}
}

// fuzzImage turns a fuzz input into an image: flag bit 2 uses the rest of
// the input as the file; otherwise the rest is a list of patches (3-byte
// offset, 1-byte length, bytes) on template (flag bits 0-1), with CRCs fixed
// afterwards when flag bit 4 is set.
func fuzzImage(t testing.TB, in []byte) []byte {
	if len(in) == 0 {
		return nil
	}
	flags, in := in[0], in[1:]
	if flags&4 != 0 {
		return in
	}
	b := append([]byte(nil), fuzzTemplates(t)[int(flags&3)%3]...)
	for len(in) >= 4 {
		off := int(in[0])<<16 | int(in[1])<<8 | int(in[2])
		off = off * 8 % len(b) // spread over the whole template, 8-byte aligned
		n := min(int(in[3]), len(in)-4)
		copy(b[off:], in[4:4+n])
		in = in[4+n:]
	}
	if flags&16 != 0 {
		fixCRCs(b)
	}
	return b
}

// exercise opens b as a VHDX and reads it: errors are fine; panics, hangs
// and giant allocations are not.
func exercise(t *testing.T, b []byte) {
	node := mem.New(int64(len(b)))
	if err := node.Pwrite(b, 0, 0); err != nil {
		t.Fatal(err)
	}
	noParent := func(string, string) (block.Driver, error) { return nil, errors.New("no parent in a fuzz test") }
	img, err := Open(node, image.FormatOpen{Name: "fuzz", ReadOnly: true, OpenBacking: noParent, Options: map[string]string{"replay-log": "on"}})
	if err != nil {
		img, err = Open(node, image.FormatOpen{Name: "fuzz", ReadOnly: true, OpenBacking: noParent, Options: map[string]string{"ignore-log": "on"}})
	}
	if err != nil {
		if img, err = Open(node, image.FormatOpen{Name: "fuzz", ReadOnly: true, NoBacking: true}); err != nil {
			return
		}
	}
	defer img.Close()
	size := img.Size()
	buf := make([]byte, min(size, 3<<20))
	_ = img.Pread(buf, 0)
	_ = img.Pread(buf[:min(size, 4096)], size-min(size, 4096))
	steps := 0
	for off := int64(0); off < size && steps < 1000; steps++ {
		e, err := img.BlockStatus(off, size-off)
		if err != nil {
			break
		}
		if e.Off != off || e.Len <= 0 || e.Len > size-off {
			t.Fatalf("block status at %d answered %+v", off, e)
		}
		off = e.End()
	}
	_, _ = img.Info()
	_ = img.Specific().HumanFields()
}

// FuzzOpen opens mutated images (patches on two small templates, or raw
// bytes), then reads and walks block status. Run it with:
//
//	go test ./format/vhdx -run '^$' -fuzz FuzzOpen -fuzztime 60s -fuzzminimizetime 10s
func FuzzOpen(f *testing.F) {
	le32 := func(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
	patch := func(off int, data []byte) []byte {
		o := off / 8
		return append([]byte{byte(o >> 16), byte(o >> 8), byte(o), byte(len(data))}, data...)
	}
	f.Add([]byte{0})
	f.Add([]byte{1})
	f.Add([]byte{2})
	f.Add([]byte{4, 'v', 'h', 'd', 'x', 'f', 'i', 'l', 'e'})
	f.Add(append([]byte{16}, patch(region1Offset+16+24, le32(0xfff00000))...))            // huge BAT region
	f.Add(append([]byte{16}, patch(region1Offset+8, le32(5000))...))                      // many regions
	f.Add(append([]byte{17}, patch(header1Offset+48, []byte{1, 2, 3, 4, 5, 6, 7, 8})...)) // a log
	f.Add(append([]byte{18}, patch(mib+8, le32(1<<30))...))                               // huge log entry
	f.Fuzz(func(t *testing.T, in []byte) {
		exercise(t, fuzzImage(t, in))
	})
}

package vpc

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/protocol/mem"
)

// fuzzSeeds returns small valid images of every subformat.
func fuzzSeeds() [][]byte {
	var seeds [][]byte
	if files, _ := filepath.Glob("testdata/*.vhd"); len(files) > 0 {
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil {
				seeds = append(seeds, b)
			}
		}
	}
	// Small images: the fuzzer minimizes interesting inputs byte by byte.
	bm := []byte{0x80}
	data := make([]byte, 512)
	for i := range data {
		data[i] = byte(i)
	}
	seeds = append(seeds,
		buildDynamic(8<<10, 512, map[int64]testBlock{1: {bm, data}, 5: {[]byte{0xff}, data}}, "", nil),
		buildDynamic(4<<10, 512, map[int64]testBlock{0: {bm, data}}, "p.vhd",
			[]locator{{"W2ru", utf16LE(`.\p.vhd`)}, {"MacX", []byte("file:///tmp/p.vhd")}, {"W2ku", utf16LE(`C:\p.vhd`)}}),
		append(make([]byte, 1024), fixedFooter(CreateParams{Size: 1024, ForceSize: true}).encode()...),
	)
	return seeds
}

// fixChecksums recomputes the footer checksums (at 0 and at the end) and
// the dynamic header's, so that mutations get past them.
func fixChecksums(b []byte) {
	if len(b) < footerSize {
		return
	}
	for _, at := range []int{0, len(b) - footerSize} {
		binary.BigEndian.PutUint32(b[at+64:], checksum(b[at:at+footerSize], 64))
	}
	if do := binary.BigEndian.Uint64(b[16:]); do < uint64(len(b)) && uint64(len(b))-do >= dynHeaderSize {
		h := b[do : do+dynHeaderSize]
		binary.BigEndian.PutUint32(h[36:], checksum(h, 36))
	}
}

// exercise opens data as a VHD and reads it: errors are fine, panics,
// hangs and giant allocations are not.
func exercise(t *testing.T, data []byte) {
	node := mem.New(int64(len(data)))
	if err := node.Pwrite(data, 0, 0); err != nil {
		t.Fatal(err)
	}
	noParent := func(string, string) (block.Driver, error) { return nil, errors.New("no parent in a fuzz test") }
	img, err := Open(node, image.FormatOpen{Name: "fuzz", ReadOnly: true, OpenBacking: noParent})
	if err != nil {
		if img, err = Open(node, image.FormatOpen{Name: "fuzz", ReadOnly: true, NoBacking: true}); err != nil {
			return
		}
	}
	defer img.Close()
	size := img.Size()
	buf := make([]byte, min(size, 1<<20))
	_ = img.Pread(buf, 0)
	_ = img.Pread(buf[:min(int64(len(buf)), 4096)], size-min(size, 4096))
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

// FuzzOpen feeds arbitrary bytes to Open, then reads and walks block
// status; each input is tried as is and with its checksums fixed. Run it
// with:
//
//	go test ./format/vpc -run '^$' -fuzz FuzzOpen -fuzztime 60s -fuzzminimizetime 10s
func FuzzOpen(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if p := os.Getenv("VPC_FUZZ_TRACE"); p != "" {
			_ = os.WriteFile(p, data, 0o644) // the input in progress, to find hangs
		}
		exercise(t, data)
		fixed := append([]byte(nil), data...)
		fixChecksums(fixed)
		exercise(t, fixed)
	})
}

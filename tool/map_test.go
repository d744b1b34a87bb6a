package tool

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/protocol/mem"
)

// scripted is a node whose BlockStatus answers from a fixed list of
// extents (covering [0, size) in order); HostOffset -1 stays -1, others are
// shifted to the asked offset.
type scripted struct {
	*mem.Node
	extents []block.Extent
	backing block.Driver
}

func newScripted(size int64, backing block.Driver, extents ...block.Extent) *scripted {
	return &scripted{Node: mem.New(size), extents: extents, backing: backing}
}

func (s *scripted) Backing() block.Driver { return s.backing }

func (s *scripted) BlockStatus(off, n int64) (block.Extent, error) {
	for _, e := range s.extents {
		if off >= e.Off && off < e.End() {
			out := e
			out.Off = off
			out.Len = min(e.End(), off+n) - off
			if e.HostOffset >= 0 {
				out.HostOffset = e.HostOffset + off - e.Off
			}
			return out, nil
		}
	}
	return block.Extent{}, block.ErrOutOfRange
}

func runMap(t *testing.T, d block.Driver, json bool, start, maxLen int64) string {
	t.Helper()
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	m := &mapper{w: w, json: json}
	m.chain("top", d)
	if len(m.nodes) > 1 {
		m.names[1] = "base" // the scripted nodes have no BackingFile
	}
	if err := m.run(start, maxLen); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	return b.String()
}

func ext(off, n int64, s block.Status, host int64) block.Extent {
	return block.Extent{Off: off, Len: n, Status: s, HostOffset: host}
}

const (
	dataAlloc = block.Data | block.Allocated
	unalloc   = block.Status(0)
)

func TestMapOverlayLargerThanBacking(t *testing.T) {
	// qemu-img: past the end of a shorter backing file the overlay reads
	// zeros without having them: depth 0, present false, zero true.
	base := newScripted(4096, nil, ext(0, 4096, dataAlloc, 0))
	top := newScripted(8192, base, ext(0, 8192, unalloc, -1))
	got := runMap(t, top, true, 0, -1)
	want := `[{ "start": 0, "length": 4096, "depth": 1, "present": true, "zero": false, "data": true, "offset": 0},
{ "start": 4096, "length": 4096, "depth": 0, "present": false, "zero": true, "data": false}]
`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestMapUnallocatedChainAndCompressed(t *testing.T) {
	base := newScripted(16384, nil,
		ext(0, 4096, unalloc, -1),
		ext(4096, 4096, dataAlloc|block.Compressed, 777),
		ext(8192, 4096, block.Zero|block.Allocated, 65536), // anchored
		ext(12288, 4096, block.Zero, -1))
	top := newScripted(16384, base, ext(0, 16384, unalloc, -1))
	got := runMap(t, top, true, 0, -1)
	want := `[{ "start": 0, "length": 4096, "depth": 1, "present": false, "zero": true, "data": false},
{ "start": 4096, "length": 4096, "depth": 1, "present": true, "zero": false, "data": true},
{ "start": 8192, "length": 4096, "depth": 1, "present": true, "zero": true, "data": false, "offset": 65536},
{ "start": 12288, "length": 4096, "depth": 1, "present": true, "zero": true, "data": false}]
`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	// Human output refuses runs of data without a host offset, as qemu-img.
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	m := &mapper{w: w}
	m.chain("top", top)
	if err := m.run(0, -1); err != errHumanMap {
		t.Fatalf("human map of compressed data: err %v, want errHumanMap", err)
	}
}

func TestMapMergesOnlyContiguousHostOffsets(t *testing.T) {
	top := newScripted(16384, nil,
		ext(0, 4096, dataAlloc, 0),
		ext(4096, 4096, dataAlloc, 4096),   // contiguous: merged
		ext(8192, 4096, dataAlloc, 100000), // jump: a new entry
		ext(12288, 4096, dataAlloc, 104096))
	got := runMap(t, top, true, 0, -1)
	want := `[{ "start": 0, "length": 8192, "depth": 0, "present": true, "zero": false, "data": true, "offset": 0},
{ "start": 8192, "length": 8192, "depth": 0, "present": true, "zero": false, "data": true, "offset": 100000}]
`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	human := runMap(t, top, false, 0, -1)
	wantH := "Offset          Length          Mapped to       File\n" +
		"0               0x2000          0               top\n" +
		"0x2000          0x2000          0x186a0         top\n"
	if human != wantH {
		t.Fatalf("human got\n%q\nwant\n%q", human, wantH)
	}
}

func TestMapHumanCoalescesZeroKinds(t *testing.T) {
	// Human output treats zero, hole and zero|data alike and merges them,
	// exactly as qemu-img's dump does; data runs after them still print.
	top := newScripted(20480, nil,
		ext(0, 4096, dataAlloc, 0),
		ext(4096, 4096, block.Zero, 4096),
		ext(8192, 4096, block.Zero|block.Allocated, 8192),
		ext(12288, 8192, dataAlloc, 12288))
	human := runMap(t, top, false, 0, -1)
	want := "Offset          Length          Mapped to       File\n" +
		"0               0x1000          0               top\n" +
		"0x3000          0x2000          0x3000          top\n"
	if human != want {
		t.Fatalf("got\n%s\nwant\n%s", human, want)
	}
}

func TestMapWindow(t *testing.T) {
	top := newScripted(16384, nil, ext(0, 8192, block.Zero, 0), ext(8192, 8192, dataAlloc, 8192))
	got := runMap(t, top, true, 4096, 8192)
	want := `[{ "start": 4096, "length": 4096, "depth": 0, "present": true, "zero": true, "data": false, "offset": 4096},
{ "start": 8192, "length": 4096, "depth": 0, "present": true, "zero": false, "data": true, "offset": 8192}]
`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	got = runMap(t, top, true, 20000, -1)
	if want := `[{ "start": 20000, "length": 0, "depth": 0, "present": false, "zero": false, "data": false}]` + "\n"; got != want {
		t.Fatalf("start past the end: got %q want %q", got, want)
	}
}

func TestGetopt(t *testing.T) {
	opts, args, err := getopt([]string{"-zu", "-P", "0x5", "-q", "--", "-1", "2"}, "P:qzuf")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := opts['z']; !ok || opts['P'] != "0x5" || len(args) != 2 || args[0] != "-1" {
		t.Fatalf("opts %v args %v", opts, args)
	}
	if opts, _, _ := getopt([]string{"-P7", "1", "2"}, "P:"); opts['P'] != "7" {
		t.Fatalf("-P7: %v", opts)
	}
	for _, bad := range [][]string{{"-x", "1", "2"}, {"-P"}, {"-:"}} {
		if _, _, err := getopt(bad, "P:q"); err == nil {
			t.Errorf("getopt(%q) succeeded", bad)
		}
	}
}

func TestMapOffsetOfUnallocatedSubclusters(t *testing.T) {
	// qemu-img shows the host offset of a run the layer does not describe
	// when it knows one (unallocated subclusters of an allocated extended-L2
	// cluster): present false, zero true, with "offset".
	top := newScripted(8192, nil, ext(0, 4096, unalloc, 655360), ext(4096, 4096, dataAlloc, 659456))
	got := runMap(t, top, true, 0, -1)
	want := `[{ "start": 0, "length": 4096, "depth": 0, "present": false, "zero": true, "data": false, "offset": 655360},
{ "start": 4096, "length": 4096, "depth": 0, "present": true, "zero": false, "data": true, "offset": 659456}]
`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

package scsi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/protocol/mem"
)

const testSize = 4 << 20 // 4 MiB: 8192 blocks of 512 bytes, 64 mem chunks

func newLU(t testing.TB, cfg Config) (*LU, *mem.Node) {
	t.Helper()
	node := mem.New(testSize)
	lu, err := New(node, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return lu, node
}

// run executes one command and returns it.
func run(lu *LU, cdb []byte, dataOut []byte) *Command {
	c := &Command{CDB: cdb, DataOut: dataOut}
	lu.Execute(c)
	return c
}

func senseOf(c *Command) (key, asc, ascq byte) {
	if len(c.Sense) < 14 {
		return 0, 0, 0
	}
	return c.Sense[2] & 0x0F, c.Sense[12], c.Sense[13]
}

func wantGood(t *testing.T, c *Command) {
	t.Helper()
	if c.Status != StatusGood {
		k, a, q := senseOf(c)
		t.Fatalf("CDB % x: status 0x%x sense %x/%02x/%02x, want GOOD", c.CDB, c.Status, k, a, q)
	}
}

func wantSense(t *testing.T, c *Command, s Sense) {
	t.Helper()
	k, a, q := senseOf(c)
	if c.Status != StatusCheckCondition || k != s.Key || a != s.ASC || q != s.ASCQ {
		t.Fatalf("CDB % x: status 0x%x sense %x/%02x/%02x, want CHECK CONDITION %x/%02x/%02x",
			c.CDB, c.Status, k, a, q, s.Key, s.ASC, s.ASCQ)
	}
}

func cdb16(op byte, flags byte, lba uint64, n uint32) []byte {
	c := make([]byte, 16)
	c[0], c[1] = op, flags
	binary.BigEndian.PutUint64(c[2:], lba)
	binary.BigEndian.PutUint32(c[10:], n)
	return c
}

func cdb10(op byte, flags byte, lba uint32, n uint16) []byte {
	c := make([]byte, 10)
	c[0], c[1] = op, flags
	binary.BigEndian.PutUint32(c[2:], lba)
	binary.BigEndian.PutUint16(c[7:], n)
	return c
}

func unmapList(descs ...[2]uint64) []byte {
	p := make([]byte, 8+16*len(descs))
	binary.BigEndian.PutUint16(p, uint16(len(p)-2))
	binary.BigEndian.PutUint16(p[2:], uint16(16*len(descs)))
	for i, d := range descs {
		binary.BigEndian.PutUint64(p[8+16*i:], d[0])
		binary.BigEndian.PutUint32(p[16+16*i:], uint32(d[1]))
	}
	return p
}

func unmapCDB(anchor bool, plen int) []byte {
	c := make([]byte, 10)
	c[0] = opUnmap
	if anchor {
		c[1] = 1
	}
	binary.BigEndian.PutUint16(c[7:], uint16(plen))
	return c
}

func fill(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

// lbaStatus returns the first GET LBA STATUS descriptor at lba.
func lbaStatus(t *testing.T, lu *LU, lba uint64) (start, blocks uint64, status byte) {
	t.Helper()
	c := make([]byte, 16)
	c[0], c[1] = opServiceActionIn16, saGetLBAStatus
	binary.BigEndian.PutUint64(c[2:], lba)
	binary.BigEndian.PutUint32(c[10:], 24)
	cmd := run(lu, c, nil)
	wantGood(t, cmd)
	if len(cmd.DataIn) < 24 {
		t.Fatalf("GET LBA STATUS returned %d bytes", len(cmd.DataIn))
	}
	d := cmd.DataIn[8:]
	return binary.BigEndian.Uint64(d), uint64(binary.BigEndian.Uint32(d[8:])), d[12] & 0x0F
}

func TestReadWriteAndRanges(t *testing.T) {
	lu, node := newLU(t, Config{})
	data := fill(3*512, 0xAB)
	wantGood(t, run(lu, cdb10(opWrite10, flagFUA, 10, 3), data))
	got := make([]byte, 3*512)
	if err := node.Pread(got, 10*512); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("node holds % x..., err %v", got[:4], err)
	}
	c := run(lu, cdb16(opRead16, 0, 10, 3), nil)
	wantGood(t, c)
	if !bytes.Equal(c.DataIn, data) {
		t.Fatal("READ16 returned other bytes than written")
	}
	c.Release()
	last := lu.Blocks() - 1
	wantGood(t, run(lu, cdb16(opRead16, 0, last, 1), nil))
	wantGood(t, run(lu, cdb16(opRead16, 0, lu.Blocks(), 0), nil)) // 0 blocks at capacity
	for _, tc := range []struct {
		lba uint64
		n   uint32
	}{{last, 2}, {lu.Blocks() + 1, 0}, {1<<64 - 1, 2}, {1<<64 - 1, 0}, {1 << 63, 1}} {
		wantSense(t, run(lu, cdb16(opRead16, 0, tc.lba, tc.n), nil), SenseLBAOutOfRange)
		wantSense(t, run(lu, cdb16(opWrite16, 0, tc.lba, tc.n), fill(int(tc.n)*512, 1)), SenseLBAOutOfRange)
	}
	wantSense(t, run(lu, cdb10(opRead10, 0x20, 0, 1), nil), SenseInvalidFieldInCDB) // RDPROTECT
	wantSense(t, run(lu, []byte{0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, nil), SenseInvalidOpcode)
	wantSense(t, run(lu, []byte{opRead16, 0, 0}, nil), SenseInvalidFieldInCDB) // short CDB
	// READ(6) with a transfer length of 0 reads 256 blocks.
	c = run(lu, []byte{opRead6, 0, 0, 0, 0, 0}, nil)
	wantGood(t, c)
	if len(c.DataIn) != 256*512 {
		t.Fatalf("READ6 length 0 returned %d bytes, want 256 blocks", len(c.DataIn))
	}
}

func TestTruncatedWrite(t *testing.T) {
	lu, node := newLU(t, Config{})
	// Two blocks asked, one block and a half given: one block is written.
	wantGood(t, run(lu, cdb10(opWrite10, 0, 0, 2), fill(768, 'b')))
	got := make([]byte, 1024)
	node.Pread(got, 0)
	if !bytes.Equal(got[:512], fill(512, 'b')) || !block.IsZero(got[512:]) {
		t.Fatal("truncated write did not write exactly the whole blocks given")
	}
	if !Truncatable(cdb10(opWrite10, 0, 0, 2)) || Truncatable(cdb16(opCompareAndWrite, 0, 0, 0)) {
		t.Fatal("Truncatable is wrong")
	}
}

func TestInquiryPages(t *testing.T) {
	lu, _ := newLU(t, Config{LBPRZ: true, Anchor: true, Serial: "abc123", Discard: block.DiscardUnmap})
	inq := func(evpd byte, page byte) []byte {
		c := run(lu, []byte{opInquiry, evpd, page, 0x10, 0, 0}, nil)
		wantGood(t, c)
		return c.DataIn
	}
	std := inq(0, 0)
	if std[0] != 0 || std[2] != 6 || std[3]&0x0F != 2 || int(std[4]) != len(std)-5 || string(std[8:15]) != "THINBLK" {
		t.Fatalf("standard INQUIRY % x", std[:36])
	}
	if got := string(inq(1, vpdSerial)[4:]); got != "abc123" {
		t.Fatalf("serial %q", got)
	}
	bl := inq(1, vpdBlockLimits)
	if len(bl) != 64 || bl[3] != 0x3C {
		t.Fatalf("block limits page length %d/%d", len(bl), bl[3])
	}
	if n := binary.BigEndian.Uint32(bl[24:]); n == 0 || n == 0xFFFFFFFF {
		t.Fatalf("MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT %d is not finite", n)
	}
	if g := binary.BigEndian.Uint32(bl[28:]); g != mem.ChunkSize/512 {
		t.Fatalf("OPTIMAL UNMAP GRANULARITY %d, want %d from Limits", g, mem.ChunkSize/512)
	}
	if bl[32]&0x80 == 0 {
		t.Fatal("UGAVALID clear")
	}
	lbp := inq(1, vpdProvisioning)
	if lbp[5] != 0x80|0x40|0x20|0x04|0x02 || lbp[6]&7 != provThin {
		t.Fatalf("provisioning page % x", lbp)
	}
	wantSense(t, run(lu, []byte{opInquiry, 1, 0x99, 0, 255, 0}, nil), SenseInvalidFieldInCDB)
	wantSense(t, run(lu, []byte{opInquiry, 0, 0x80, 0, 255, 0}, nil), SenseInvalidFieldInCDB)
	// Allocation length truncates.
	if c := run(lu, []byte{opInquiry, 0, 0, 0, 5, 0}, nil); len(c.DataIn) != 5 {
		t.Fatalf("INQUIRY alloc 5 returned %d bytes", len(c.DataIn))
	}

	// Defaults: LBPRZ and ANC_SUP clear.
	lu2, _ := newLU(t, Config{})
	c := run(lu2, []byte{opInquiry, 1, vpdProvisioning, 0, 255, 0}, nil)
	if c.DataIn[5]&0x06 != 0 {
		t.Fatalf("default LU advertises LBPRZ/ANC_SUP: % x", c.DataIn)
	}
}

func TestReadCapacity16(t *testing.T) {
	for _, lbprz := range []bool{false, true} {
		lu, _ := newLU(t, Config{LBPRZ: lbprz, BlockSize: 4096})
		c := run(lu, []byte{opServiceActionIn16, saReadCapacity16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0}, nil)
		wantGood(t, c)
		p := c.DataIn
		if binary.BigEndian.Uint64(p) != testSize/4096-1 || binary.BigEndian.Uint32(p[8:]) != 4096 {
			t.Fatalf("capacity % x", p[:12])
		}
		if p[14]&0x80 == 0 || (p[14]&0x40 != 0) != lbprz {
			t.Fatalf("lbprz=%v: byte 14 = %#x", lbprz, p[14])
		}
	}
}

// fakeNode is a mem node with chosen caps.
type fakeNode struct {
	*mem.Node
	caps block.Caps
}

func (f fakeNode) Caps() block.Caps { return f.caps }

func TestLBPRZRefusedWithoutZeroingDeallocation(t *testing.T) {
	node := fakeNode{mem.New(testSize), block.Caps{Write: true, Discard: true, BlockStatus: true}}
	if _, err := New(node, Config{LBPRZ: true}); !errors.Is(err, block.ErrNotSupported) {
		t.Fatalf("lbprz=1 over a node that cannot deallocate-and-zero: err %v", err)
	}
	if _, err := New(node, Config{}); err != nil {
		t.Fatal(err)
	}
	// A node whose Discard may leave partial granules (qcow2) but whose
	// WriteZeroes(MayUnmap) deallocates and zeroes qualifies: with LBPRZ the
	// LU unmaps through WriteZeroes.
	zeroing := fakeNode{mem.New(testSize), block.Caps{Write: true, Discard: true, ZeroUnmap: true, WriteZeroes: true, BlockStatus: true}}
	if _, err := New(zeroing, Config{LBPRZ: true}); err != nil {
		t.Fatalf("lbprz=1 over a node with ZeroUnmap: %v", err)
	}
	if _, err := New(node, Config{BlockSize: 1024}); err == nil {
		t.Fatal("block size 1024 accepted")
	}
}

func TestUnmapPolicy(t *testing.T) {
	const chunkBlocks = mem.ChunkSize / 512
	data := fill(2*mem.ChunkSize, 0x5A)
	// discard=ignore: accepted, nothing changes.
	lu, node := newLU(t, Config{})
	wantGood(t, run(lu, cdb16(opWrite16, 0, 0, 2*chunkBlocks), data))
	list := unmapList([2]uint64{0, 2 * chunkBlocks})
	wantGood(t, run(lu, unmapCDB(false, len(list)), list))
	got := make([]byte, len(data))
	node.Pread(got, 0)
	if !bytes.Equal(got, data) {
		t.Fatal("UNMAP with discard=ignore changed data")
	}
	if _, _, st := lbaStatus(t, lu, 0); st != lbaMapped {
		t.Fatalf("status after ignored UNMAP %d", st)
	}
	// ANCHOR without ANC_SUP is refused.
	wantSense(t, run(lu, unmapCDB(true, len(list)), list), SenseInvalidFieldInCDB)

	// discard=unmap: deallocated, reads zero.
	lu, node = newLU(t, Config{Discard: block.DiscardUnmap, Anchor: true})
	wantGood(t, run(lu, cdb16(opWrite16, 0, 0, 2*chunkBlocks), data))
	list = unmapList([2]uint64{0, chunkBlocks})
	wantGood(t, run(lu, unmapCDB(false, len(list)), list))
	start, n, st := lbaStatus(t, lu, 0)
	if start != 0 || n != chunkBlocks || st != lbaDeallocated {
		t.Fatalf("after UNMAP: lba %d blocks %d status %d", start, n, st)
	}
	if _, _, st := lbaStatus(t, lu, chunkBlocks); st != lbaMapped {
		t.Fatalf("block after the unmapped range: status %d", st)
	}
	// UNMAP with ANCHOR: reads zero, anchored.
	list = unmapList([2]uint64{chunkBlocks, chunkBlocks})
	wantGood(t, run(lu, unmapCDB(true, len(list)), list))
	if _, _, st := lbaStatus(t, lu, chunkBlocks); st != lbaAnchored {
		t.Fatalf("after UNMAP ANCHOR: status %d", st)
	}
	node.Pread(got, 0)
	if !block.IsZero(got) {
		t.Fatal("unmapped range does not read zeros")
	}
}

func TestUnmapParameterErrors(t *testing.T) {
	lu, _ := newLU(t, Config{Discard: block.DiscardUnmap})
	n := lu.Blocks()
	cases := []struct {
		name string
		list []byte
		want Sense
	}{
		{"short header", []byte{0, 6, 0, 0, 0, 0}, SenseParamListLength},
		{"descriptor length beyond list", func() []byte { p := unmapList([2]uint64{0, 1}); p[3] = 32; return p }(), SenseParamListLength},
		{"partial descriptor", func() []byte { p := unmapList([2]uint64{0, 1}); p[3] = 15; return p }(), SenseInvalidFieldInParam},
		{"beyond end", unmapList([2]uint64{n - 1, 2}), SenseLBAOutOfRange},
		{"lba overflow", unmapList([2]uint64{1<<64 - 1, 2}), SenseLBAOutOfRange},
		{"too many blocks", unmapList(repeatDesc([2]uint64{0, n}, maxUnmapBlocks/int(n)+1)...), SenseInvalidFieldInParam},
		{"too many descriptors", unmapList(make([][2]uint64, maxUnmapDescriptors+1)...), SenseInvalidFieldInParam},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantSense(t, run(lu, unmapCDB(false, len(tc.list)), tc.list), tc.want)
		})
	}
	// Zero blocks at the capacity and an empty list are fine.
	l := unmapList([2]uint64{n, 0})
	wantGood(t, run(lu, unmapCDB(false, len(l)), l))
	wantGood(t, run(lu, unmapCDB(false, 0), nil))
}

func repeatDesc(d [2]uint64, k int) [][2]uint64 {
	out := make([][2]uint64, k)
	for i := range out {
		out[i] = d
	}
	return out
}

func wsCDB(op byte, flags byte, lba uint64, n uint32) []byte {
	if op == opWriteSame10 {
		return cdb10(op, flags, uint32(lba), uint16(n))
	}
	return cdb16(op, flags, lba, n)
}

func TestWriteSame(t *testing.T) {
	const chunkBlocks = mem.ChunkSize / 512
	for _, op := range []byte{opWriteSame10, opWriteSame16} {
		lu, node := newLU(t, Config{Discard: block.DiscardUnmap, Anchor: true})
		// A pattern is replicated.
		pattern := fill(512, 0xC3)
		wantGood(t, run(lu, wsCDB(op, 0, 0, 4*chunkBlocks), pattern))
		got := make([]byte, 4*mem.ChunkSize)
		node.Pread(got, 0)
		if !bytes.Equal(got, fill(len(got), 0xC3)) {
			t.Fatal("WRITE SAME did not replicate the block")
		}
		// UNMAP with a zero payload deallocates.
		wantGood(t, run(lu, wsCDB(op, wsFlagUnmap, 0, chunkBlocks), make([]byte, 512)))
		if _, _, st := lbaStatus(t, lu, 0); st != lbaDeallocated {
			t.Fatalf("op %#x: WRITE SAME UNMAP left status %d", op, st)
		}
		// UNMAP with a non-zero payload writes it.
		wantGood(t, run(lu, wsCDB(op, wsFlagUnmap, chunkBlocks, chunkBlocks), pattern))
		if _, _, st := lbaStatus(t, lu, chunkBlocks); st != lbaMapped {
			t.Fatalf("WRITE SAME UNMAP with data: status %d", st)
		}
		// ANCHOR: zeros that keep storage.
		wantGood(t, run(lu, wsCDB(op, wsFlagUnmap|wsFlagAnchor, 2*chunkBlocks, chunkBlocks), make([]byte, 512)))
		if _, _, st := lbaStatus(t, lu, 2*chunkBlocks); st != lbaAnchored {
			t.Fatalf("WRITE SAME ANCHOR: status %d", st)
		}
		// Zero payload without UNMAP: zeros, storage kept.
		wantGood(t, run(lu, wsCDB(op, 0, 3*chunkBlocks, chunkBlocks), make([]byte, 512)))
		if _, _, st := lbaStatus(t, lu, 3*chunkBlocks); st == lbaDeallocated {
			t.Fatal("WRITE SAME of zeros without UNMAP deallocated")
		}
		node.Pread(got, 0)
		if !block.IsZero(got[:mem.ChunkSize]) || !block.IsZero(got[2*mem.ChunkSize:]) {
			t.Fatal("zeroed ranges do not read zeros")
		}
		// ANCHOR without UNMAP, and beyond the end.
		wantSense(t, run(lu, wsCDB(op, wsFlagAnchor, 0, 1), make([]byte, 512)), SenseInvalidFieldInCDB)
		wantSense(t, run(lu, wsCDB(op, 0, lu.Blocks()-1, 2), pattern), SenseLBAOutOfRange)
		// Missing Data-Out.
		wantSense(t, run(lu, wsCDB(op, 0, 0, 1), nil), SenseInvalidFieldInIU)
	}
	// NDOB: no Data-Out, zeros.
	lu, node := newLU(t, Config{Discard: block.DiscardUnmap})
	wantGood(t, run(lu, cdb16(opWrite16, 0, 0, 8), fill(8*512, 7)))
	if n := lu.DataOutLen(cdb16(opWriteSame16, wsFlagNDOB, 0, 8)); n != 0 {
		t.Fatalf("NDOB DataOutLen %d", n)
	}
	wantGood(t, run(lu, cdb16(opWriteSame16, wsFlagNDOB|wsFlagUnmap, 0, 8), nil))
	got := make([]byte, 8*512)
	node.Pread(got, 0)
	if !block.IsZero(got) {
		t.Fatal("NDOB did not zero")
	}
}

func TestGetLBAStatusRuns(t *testing.T) {
	const chunkBlocks = mem.ChunkSize / 512
	lu, node := newLU(t, Config{})
	node.Pwrite(fill(mem.ChunkSize, 1), 2*mem.ChunkSize, 0)
	node.WriteZeroes(4*mem.ChunkSize, mem.ChunkSize, 0) // anchored
	node.Pwrite(fill(10, 1), 6*mem.ChunkSize+100, 0)    // one partial chunk: mapped
	want := []struct {
		lba, n uint64
		st     byte
	}{
		{0, 2 * chunkBlocks, lbaDeallocated},
		{2 * chunkBlocks, chunkBlocks, lbaMapped},
		{3 * chunkBlocks, chunkBlocks, lbaDeallocated},
		{4 * chunkBlocks, chunkBlocks, lbaAnchored},
		{5 * chunkBlocks, chunkBlocks, lbaDeallocated},
		{6 * chunkBlocks, chunkBlocks, lbaMapped},
		{7 * chunkBlocks, lu.Blocks() - 7*chunkBlocks, lbaDeallocated},
	}
	c := make([]byte, 16)
	c[0], c[1] = opServiceActionIn16, saGetLBAStatus
	binary.BigEndian.PutUint32(c[10:], 4096)
	cmd := run(lu, c, nil)
	wantGood(t, cmd)
	p := cmd.DataIn
	if n := (len(p) - 8) / 16; n != len(want) || int(binary.BigEndian.Uint32(p)) != len(p)-4 {
		t.Fatalf("%d descriptors (length field %d), want %d", n, binary.BigEndian.Uint32(p), len(want))
	}
	for i, w := range want {
		d := p[8+16*i:]
		if binary.BigEndian.Uint64(d) != w.lba || uint64(binary.BigEndian.Uint32(d[8:])) != w.n || d[12] != w.st {
			t.Errorf("descriptor %d: lba %d n %d status %d, want %+v", i, binary.BigEndian.Uint64(d), binary.BigEndian.Uint32(d[8:]), d[12], w)
		}
	}
	// From the middle of a run, and beyond the end.
	if start, n, st := lbaStatus(t, lu, 2*chunkBlocks+5); start != 2*chunkBlocks+5 || n != chunkBlocks-5 || st != lbaMapped {
		t.Fatalf("mid-run: %d %d %d", start, n, st)
	}
	binary.BigEndian.PutUint64(c[2:], lu.Blocks())
	wantSense(t, run(lu, c, nil), SenseLBAOutOfRange)
}

func TestCompareAndWrite(t *testing.T) {
	lu, node := newLU(t, Config{})
	node.Pwrite(fill(1024, 'A'), 512, 0)
	caw := func(lba uint64, n byte) []byte {
		c := make([]byte, 16)
		c[0] = opCompareAndWrite
		binary.BigEndian.PutUint64(c[2:], lba)
		c[13] = n
		return c
	}
	if got := lu.DataOutLen(caw(1, 2)); got != 2048 {
		t.Fatalf("DataOutLen %d", got)
	}
	wantGood(t, run(lu, caw(1, 2), append(fill(1024, 'A'), fill(1024, 'B')...)))
	got := make([]byte, 1024)
	node.Pread(got, 512)
	if !bytes.Equal(got, fill(1024, 'B')) {
		t.Fatal("COMPARE AND WRITE did not write")
	}
	verify := fill(1024, 'B')
	verify[700] = 'X'
	c := run(lu, caw(1, 2), append(verify, fill(1024, 'C')...))
	wantSense(t, c, SenseMiscompare)
	if c.Sense[0]&0x80 == 0 || binary.BigEndian.Uint32(c.Sense[3:]) != 700 {
		t.Fatalf("miscompare sense % x: want VALID and offset 700", c.Sense)
	}
	node.Pread(got, 512)
	if !bytes.Equal(got, fill(1024, 'B')) {
		t.Fatal("a miscompare wrote data")
	}
	wantSense(t, run(lu, caw(0, maxCompareAndWrite+1), make([]byte, 2*512*(maxCompareAndWrite+1))), SenseInvalidFieldInCDB)
	wantSense(t, run(lu, caw(0, 2), make([]byte, 1024)), SenseInvalidFieldInIU)
	wantSense(t, run(lu, caw(lu.Blocks()-1, 2), make([]byte, 2048)), SenseLBAOutOfRange)
	if DataOutMismatch(caw(0, 0)) != SenseInvalidFieldInCDB || DataOutMismatch(cdb10(opWrite10, 0, 0, 1)) != SenseInvalidFieldInIU {
		t.Fatal("DataOutMismatch")
	}
}

func TestReadOnly(t *testing.T) {
	lu, _ := newLU(t, Config{ReadOnly: true})
	l := unmapList([2]uint64{0, 1})
	for _, c := range [][]byte{
		cdb10(opWrite10, 0, 0, 1), cdb16(opWrite16, 0, 0, 1), cdb10(opWriteSame10, 0, 0, 1),
		unmapCDB(false, len(l)), cdb16(opOrWrite, 0, 0, 1), cdb10(opWriteVerify10, 0, 0, 1),
	} {
		wantSense(t, run(lu, c, fill(512, 1)), SenseWriteProtected)
	}
	ms := run(lu, []byte{opModeSense6, 0x08, pageAll, 0, 255, 0}, nil)
	wantGood(t, ms)
	if ms.DataIn[2]&0x80 == 0 {
		t.Fatal("MODE SENSE does not report WP")
	}
	wantGood(t, run(lu, cdb10(opRead10, 0, 0, 1), nil))
}

func TestModeSenseSelect(t *testing.T) {
	lu, _ := newLU(t, Config{})
	c := run(lu, []byte{opModeSense10, 0, pageAll, subAll, 0, 0, 0, 0x10, 0, 0}, nil)
	wantGood(t, c)
	p := c.DataIn
	if int(binary.BigEndian.Uint16(p))+2 != len(p) || binary.BigEndian.Uint16(p[6:]) != 8 {
		t.Fatalf("MODE SENSE(10) header % x", p[:8])
	}
	pages := p[16:]
	var codes []byte
	for len(pages) > 0 {
		n := int(pages[1]) + 2
		if pages[0]&0x40 != 0 {
			n = int(binary.BigEndian.Uint16(pages[2:])) + 4
		}
		codes = append(codes, pages[0]&0x3F)
		// Selecting the current page back is accepted.
		sel := append(make([]byte, 8), pages[:n]...)
		cdb := []byte{opModeSelect10, 0x10, 0, 0, 0, 0, 0, 0, byte(len(sel)), 0}
		wantGood(t, run(lu, cdb, sel))
		// Changing it is not.
		bad := append([]byte(nil), sel...)
		bad[len(bad)-1] ^= 0xFF
		wantSense(t, run(lu, cdb, bad), SenseInvalidFieldInParam)
		pages = pages[n:]
	}
	if !bytes.Equal(codes, []byte{pageCaching, pageControl, pageProvisioning}) {
		t.Fatalf("pages % x", codes)
	}
	wantSense(t, run(lu, []byte{opModeSense6, 0, 0xC0 | pageCaching, 0, 255, 0}, nil), SenseSavingNotSupported)
	wantSense(t, run(lu, []byte{opModeSense6, 0, 0x01, 0, 255, 0}, nil), SenseInvalidFieldInCDB)
}

func TestReportOpcodes(t *testing.T) {
	lu, _ := newLU(t, Config{})
	rsoc := func(opts, op byte, sa uint16) *Command {
		c := make([]byte, 12)
		c[0], c[1], c[2], c[3] = opMaintenanceIn, saReportOpcodes, opts, op
		binary.BigEndian.PutUint16(c[4:], sa)
		binary.BigEndian.PutUint32(c[6:], 65535)
		return run(lu, c, nil)
	}
	all := rsoc(0, 0, 0)
	wantGood(t, all)
	if n := (len(all.DataIn) - 4) / 8; n != len(supportedOps) {
		t.Fatalf("%d descriptors", n)
	}
	// Every listed command is executable: no INVALID COMMAND OPERATION CODE.
	for _, op := range supportedOps {
		cdb := make([]byte, 16)
		cdb[0] = op.opcode
		cdb[1] = byte(op.sa)
		c := run(lu, cdb[:CDBLen(op.opcode)], nil)
		if k, a, _ := senseOf(c); c.Status == StatusCheckCondition && k == KeyIllegalRequest && a == 0x20 {
			t.Errorf("opcode %#x sa %#x listed but not executed", op.opcode, op.sa)
		}
	}
	one := rsoc(1, opRead16, 0)
	wantGood(t, one)
	if one.DataIn[1]&7 != 3 || one.DataIn[4] != opRead16 || binary.BigEndian.Uint16(one.DataIn[2:]) != 16 {
		t.Fatalf("one command % x", one.DataIn)
	}
	wantSense(t, rsoc(1, opServiceActionIn16, saGetLBAStatus), SenseInvalidFieldInCDB)
	wantGood(t, rsoc(2, opServiceActionIn16, saGetLBAStatus))
	wantSense(t, rsoc(2, opRead16, 0), SenseInvalidFieldInCDB)
}

func TestTargetLUNs(t *testing.T) {
	lu, _ := newLU(t, Config{})
	tg := NewTarget()
	tg.Add(0, lu)
	tg.Add(300, lu)
	c := &Command{CDB: []byte{opReportLUNs, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0}}
	tg.Execute(5, c)
	wantGood(t, c)
	if binary.BigEndian.Uint32(c.DataIn) != 16 || binary.BigEndian.Uint64(c.DataIn[8:]) != 0 ||
		binary.BigEndian.Uint64(c.DataIn[16:]) != EncodeLUN(300) {
		t.Fatalf("REPORT LUNS % x", c.DataIn)
	}
	if n, ok := DecodeLUN(EncodeLUN(300)); !ok || n != 300 {
		t.Fatal("LUN round trip")
	}
	c = &Command{CDB: []byte{opInquiry, 0, 0, 0, 36, 0}}
	tg.Execute(7, c)
	wantGood(t, c)
	if c.DataIn[0] != 0x7F {
		t.Fatalf("INQUIRY to an absent LUN: byte 0 = %#x", c.DataIn[0])
	}
	c = &Command{CDB: cdb10(opRead10, 0, 0, 1)}
	tg.Execute(7, c)
	wantSense(t, c, SenseLUNotSupported)
}

// TestRandomAgainstModel runs random block commands against a byte model
// of the disk, with LBPRZ=1 so that every deallocation reads zeros.
func TestRandomAgainstModel(t *testing.T) {
	seed := rand.Uint64()
	if s := os.Getenv("THINBLK_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		seed = v
	}
	t.Logf("seed %d (rerun with THINBLK_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	lu, _ := newLU(t, Config{LBPRZ: true, Anchor: true, Discard: block.DiscardUnmap})
	blocks := lu.Blocks()
	model := make([]byte, testSize)
	for i := 0; i < 600; i++ {
		n := 1 + rng.Uint64N(300)
		lba := rng.Uint64N(blocks - n + 1)
		off, end := lba*512, (lba+n)*512
		switch rng.IntN(6) {
		case 0: // WRITE16
			data := make([]byte, end-off)
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
			wantGood(t, run(lu, cdb16(opWrite16, 0, lba, uint32(n)), data))
			copy(model[off:], data)
		case 1: // WRITE SAME with a pattern or zeros, maybe UNMAP
			pattern := make([]byte, 512)
			if rng.IntN(2) == 0 {
				for j := range pattern {
					pattern[j] = byte(rng.Uint32())
				}
			}
			flags := byte(0)
			if rng.IntN(2) == 0 {
				flags = wsFlagUnmap
			}
			wantGood(t, run(lu, cdb16(opWriteSame16, flags, lba, uint32(n)), pattern))
			for p := off; p < end; p += 512 {
				copy(model[p:], pattern)
			}
		case 2: // UNMAP, maybe anchoring
			l := unmapList([2]uint64{lba, n})
			wantGood(t, run(lu, unmapCDB(rng.IntN(3) == 0, len(l)), l))
			clear(model[off:end])
		case 3: // COMPARE AND WRITE of a few blocks, matching or not
			k := min(n, maxCompareAndWrite)
			cend := off + k*512
			verify := append([]byte(nil), model[off:cend]...)
			match := rng.IntN(2) == 0
			if !match {
				verify[rng.IntN(len(verify))]++
			}
			data := fill(len(verify), byte(rng.Uint32()))
			c := make([]byte, 16)
			c[0] = opCompareAndWrite
			binary.BigEndian.PutUint64(c[2:], lba)
			c[13] = byte(k)
			cmd := run(lu, c, append(verify, data...))
			if match {
				wantGood(t, cmd)
				copy(model[off:], data)
			} else {
				wantSense(t, cmd, SenseMiscompare)
			}
		default: // READ16 and compare
			c := run(lu, cdb16(opRead16, 0, lba, uint32(n)), nil)
			wantGood(t, c)
			if !bytes.Equal(c.DataIn, model[off:end]) {
				t.Fatalf("step %d: READ16 lba %d n %d differs from the model", i, lba, n)
			}
			c.Release()
		}
	}
	// GET LBA STATUS never says mapped for a block the model holds as
	// non-zero... the reverse: a deallocated or anchored block reads zero.
	for lba := uint64(0); lba < blocks; {
		start, n, st := lbaStatus(t, lu, lba)
		if start != lba || n == 0 {
			t.Fatalf("GET LBA STATUS at %d answered lba %d n %d", lba, start, n)
		}
		if st != lbaMapped && !block.IsZero(model[lba*512:(lba+n)*512]) {
			t.Fatalf("blocks %d+%d reported %d but hold data", lba, n, st)
		}
		lba += n
	}
}

func memNode(size int64) *mem.Node { return mem.New(size) }

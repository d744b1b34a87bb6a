package scsi

import (
	"testing"

	"github.com/thinblk/thinblk/block"
)

// FuzzExecute runs arbitrary CDBs with arbitrary Data-Out on a small LU:
// nothing may panic, a CHECK CONDITION always carries fixed-format sense,
// GOOD carries none, and no command returns more Data-In than it could.
func FuzzExecute(f *testing.F) {
	seeds := [][]byte{
		cdb16(opRead16, 0, 0, 8), cdb10(opWrite10, flagFUA, 3, 2), cdb16(opWriteSame16, wsFlagUnmap, 0, 16),
		cdb16(opWriteSame16, wsFlagNDOB|wsFlagUnmap|wsFlagAnchor, 0, 16), unmapCDB(true, 24), unmapCDB(false, 40),
		{opInquiry, 1, vpdBlockLimits, 0, 255, 0}, {opInquiry, 0, 0, 1, 4, 0},
		{opServiceActionIn16, saGetLBAStatus, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0},
		{opServiceActionIn16, saReadCapacity16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0},
		{opModeSense10, 0x10, pageAll, subAll, 0, 0, 0, 0xFF, 0xFF, 0},
		{opModeSelect6, 0x10, 0, 0, 24, 0}, {opMaintenanceIn, saReportOpcodes, 0x82, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0},
		{opCompareAndWrite, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0},
		{opReportLUNs, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0}, {opVerify16, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0},
	}
	for _, s := range seeds {
		f.Add(s, unmapList([2]uint64{1, 4}, [2]uint64{9, 1}))
		f.Add(s, make([]byte, 1024))
	}
	node := newFuzzNode()
	lu, err := New(node, Config{Discard: block.DiscardUnmap, Anchor: true, LBPRZ: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, cdb, dataOut []byte) {
		if len(dataOut) > 1<<20 {
			return
		}
		c := &Command{CDB: cdb, DataOut: dataOut}
		lu.Execute(c)
		defer c.Release()
		switch c.Status {
		case StatusGood:
			if c.Sense != nil {
				t.Fatal("GOOD with sense")
			}
		case StatusCheckCondition:
			if len(c.Sense) != fixedSenseLen || c.Sense[0]&0x7F != 0x70 || c.DataIn != nil {
				t.Fatalf("bad CHECK CONDITION: sense % x, %d bytes of data", c.Sense, len(c.DataIn))
			}
		default:
			t.Fatalf("status %#x", c.Status)
		}
		if len(c.DataIn) > defaultMaxTransfer {
			t.Fatalf("%d bytes of Data-In", len(c.DataIn))
		}
		if n := lu.DataOutLen(cdb); n < 0 || n > 2*(1<<32)*int64(lu.BlockSize()) {
			t.Fatalf("DataOutLen %d", n)
		}
	})
}

// FuzzUnmapList checks the UNMAP parameter list parser: it never panics,
// never returns more than the maximum descriptor count, and decodes exactly
// the descriptors the header announces.
func FuzzUnmapList(f *testing.F) {
	f.Add(unmapList([2]uint64{0, 8}))
	f.Add(unmapList([2]uint64{1<<64 - 1, 1<<32 - 1}, [2]uint64{5, 0}))
	f.Add([]byte{0, 6, 0, 16, 0, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		descs, bad := parseUnmapList(p, maxUnmapDescriptors)
		if bad != nil {
			if descs != nil {
				t.Fatal("descriptors with an error")
			}
			return
		}
		if len(descs) > maxUnmapDescriptors || 8+16*len(descs) > len(p) {
			t.Fatalf("%d descriptors from %d bytes", len(descs), len(p))
		}
		if 16*len(descs) != int(getU16(p[2:])) {
			t.Fatalf("%d descriptors, header says %d bytes", len(descs), getU16(p[2:]))
		}
		for i, d := range descs {
			if d.lba != getU64(p[8+16*i:]) || d.blocks != getU32(p[16+16*i:]) {
				t.Fatalf("descriptor %d decoded wrong", i)
			}
		}
	})
}

func newFuzzNode() block.Driver { return memNode(1 << 20) }

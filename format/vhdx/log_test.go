package vhdx

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/internal/formattest"
	"github.com/thinblk/thinblk/internal/testutil"
)

// testLogOp is one descriptor of a built log entry.
type testLogOp struct {
	off  int64
	zero int64  // zero descriptor length, or 0
	page []byte // data descriptor content (4 KiB)
}

// buildLogEntry encodes one log entry with sequence number seq.
func buildLogEntry(seq uint64, tail int64, logGUID GUID, fileSize int64, ops []testLogOp) []byte {
	descSectors := (logHeaderSize + logDescSize*len(ops) + logSector - 1) / logSector
	var data [][]byte
	desc := make([]byte, descSectors*logSector)
	for i, op := range ops {
		d := desc[logHeaderSize+logDescSize*i:]
		binary.LittleEndian.PutUint64(d[16:], uint64(op.off))
		binary.LittleEndian.PutUint64(d[24:], seq)
		if op.page == nil {
			copy(d, logZeroDescSig)
			binary.LittleEndian.PutUint64(d[8:], uint64(op.zero))
			continue
		}
		copy(d, logDataDescSig)
		copy(d[4:8], op.page[4092:])
		copy(d[8:16], op.page[:8])
		s := make([]byte, logSector)
		copy(s, logDataSectorSig)
		binary.LittleEndian.PutUint32(s[4:], uint32(seq>>32))
		copy(s[8:4092], op.page[8:4092])
		binary.LittleEndian.PutUint32(s[4092:], uint32(seq))
		data = append(data, s)
	}
	e := desc
	for _, s := range data {
		e = append(e, s...)
	}
	copy(e, logEntrySig)
	binary.LittleEndian.PutUint32(e[8:], uint32(len(e)))
	binary.LittleEndian.PutUint32(e[12:], uint32(tail))
	binary.LittleEndian.PutUint64(e[16:], seq)
	binary.LittleEndian.PutUint32(e[24:], uint32(len(ops)))
	copy(e[32:], logGUID[:])
	binary.LittleEndian.PutUint64(e[48:], uint64(fileSize))
	binary.LittleEndian.PutUint64(e[56:], uint64(fileSize))
	binary.LittleEndian.PutUint32(e[4:], crcWithout(e, 4))
	return e
}

// TestLogReplay builds an image whose BAT update and some data are only
// in its log, then checks that replay-log=on reads what qemu-img reads
// after it replayed the log itself (qemu-img check -r all).
func TestLogReplay(t *testing.T) {
	testutil.NeedTool(t, "qemu-img")
	b, g, batOff := buildImage(t, CreateParams{Size: 8 << 20, BlockSize: mib, LogSize: mib, Subformat: "dynamic"})
	data := make([]byte, mib)
	for i := range data {
		data[i] = byte(i/4096 + 1)
	}
	b, blockOff := appendBlock(b, data)
	// The BAT page as it should be: block 1 fully present.
	batPage := append([]byte(nil), b[batOff:batOff+logSector]...)
	binary.LittleEndian.PutUint64(batPage[g.payloadIndex(1)*8:], makeEntry(payloadFullyPresent, blockOff))
	page := make([]byte, logSector)
	for i := range page {
		page[i] = 0xc3
	}
	logGUID := mustGUID("0a0b0c0d-1111-2222-3333-444455556666")
	// An old entry (sequence 3) that the active sequence supersedes, and
	// the active one (sequence 7) at the start of the log.
	stale := buildLogEntry(3, 64<<10, logGUID, int64(len(b)), []testLogOp{{off: blockOff, zero: mib}})
	active := buildLogEntry(7, 0, logGUID, int64(len(b)), []testLogOp{
		{off: batOff, page: batPage},
		{off: blockOff + 8192, zero: 3 * 4096},
		{off: blockOff + 5*4096, page: page},
	})
	copy(b[mib:], active)
	copy(b[mib+64<<10:], stale)
	h, _ := parseHeader(b[header2Offset:])
	h.LogGUID = logGUID
	h.SequenceNumber = 9
	copy(b[header2Offset:], h.encode())

	dir := t.TempDir()
	name := filepath.Join(dir, "dirty.vhdx")
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 8<<20)
	copy(want[mib:], data)
	clear(want[mib+8192 : mib+5*4096])
	copy(want[mib+5*4096:], page)

	d, err := image.Open(name, image.Options{ReadOnly: true, Options: map[string]string{"replay-log": "on"}})
	if err != nil {
		t.Fatal(err)
	}
	got := formattest.ReadAll(t, d)
	d.Close()
	if i := firstDiff(got, want); i >= 0 {
		t.Fatalf("replayed content differs at %d", i)
	}
	if after, _ := os.ReadFile(name); firstDiff(after, b) >= 0 {
		t.Fatal("a read-only replay changed the file")
	}
	if _, err := image.Open(name, image.Options{Options: map[string]string{"replay-log": "on"}}); err == nil {
		t.Fatal("replay-log opened read-write")
	}
	// qemu-img replays the log into the file; then it reads the same.
	formattest.RunCmd(t, "qemu-img", "check", "-r", "all", "-f", "vhdx", name)
	if i := firstDiff(formattest.QemuRaw(t, name, "vhdx"), want); i >= 0 {
		t.Fatalf("qemu-img's replay reads differently at %d", i)
	}
	d2 := formattest.OpenImage(t, name, "")
	if i := firstDiff(formattest.ReadAll(t, d2), want); i >= 0 {
		t.Fatalf("after qemu's replay content differs at %d", i)
	}
}

package vhdx

import (
	"encoding/binary"
	"encoding/json"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/internal/formattest"
	"github.com/thinblk/thinblk/internal/testutil"
	"github.com/thinblk/thinblk/protocol/mem"
)

// The check helpers below are the same as format/vdi's check_test.go
// (TODO: move them to internal/formattest, which another helper owns).

// batOffset returns the file offset of the BAT of the VHDX file b.
func batOffset(t testing.TB, b []byte) int64 {
	t.Helper()
	rs, err := parseRegionTable(b[region1Offset:region1Offset+regionSize], int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.GUID == regionBAT {
			return int64(r.Offset)
		}
	}
	t.Fatal("no BAT region")
	return 0
}

// TestCheckClean: VHDX images made by qemu-img (dynamic and fixed, empty
// and written, several block sizes) and by thinblk convert check clean
// with both programs, with the same JSON, also with -r leaks and -r all
// (which qemu-img accepts for vhdx).
func TestCheckClean(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	dir := t.TempDir()
	var names []string
	for _, c := range []struct{ name, opts string }{
		{"dyn.vhdx", "block_size=1M"},
		{"dyn8.vhdx", ""},
		{"fixed.vhdx", "subformat=fixed,block_size=1M"},
		{"zero.vhdx", "block_size=2M,block_state_zero=on"},
	} {
		name := filepath.Join(dir, c.name)
		args := []string{"create", "-q", "-f", "vhdx"}
		if c.opts != "" {
			args = append(args, "-o", c.opts)
		}
		formattest.QemuImg(t, append(args, name, "9M")...)
		if c.name != "dyn8.vhdx" {
			formattest.QemuIO(t, "vhdx", name, "write -P 1 0 1500k", "write -P 2 7m 4k")
		}
		names = append(names, name)
	}
	src := filepath.Join(dir, "src.raw")
	formattest.QemuImg(t, "create", "-q", "-f", "raw", src, "9M")
	formattest.QemuIO(t, "raw", src, "write -P 3 1m 2m", "write -P 4 8m 512")
	conv := filepath.Join(dir, "conv.vhdx")
	testutil.MustRun(t, testutil.Thinblk(t), "convert", "-f", "raw", "-O", "vhdx", src, conv)
	names = append(names, conv)
	for _, name := range names {
		for _, args := range [][]string{nil, {"-r", "leaks"}, {"-r", "all"}} {
			o := formattest.CheckBoth(t, name, 0, args...)
			if o.Code != 0 || !strings.Contains(o.Human, "No errors were found on the image.") {
				t.Fatalf("%s %v: exit %d\n%s", name, args, o.Code, o.Human)
			}
		}
	}
}

// TestCheckCorrupt changes BAT entries of a qemu-made image (entries chosen
// at random): a block past the end of the file, a truncated file, a block
// over the log, two entries naming one block.
func TestCheckCorrupt(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	rng := rand.New(rand.NewSource(testutil.Seed(t)))
	dir := t.TempDir()
	base := filepath.Join(dir, "base.vhdx")
	formattest.QemuImg(t, "create", "-q", "-f", "vhdx", "-o", "block_size=1M", base, "8M")
	formattest.QemuIO(t, "vhdx", base, "write -P 1 0 3M")
	orig, err := os.ReadFile(base)
	if err != nil {
		t.Fatal(err)
	}
	bat := batOffset(t, orig)
	entry := func(b []byte, i int) uint64 { return binary.LittleEndian.Uint64(b[bat+int64(i)*8:]) }
	var present, absent []int
	for i := 0; i < 8; i++ {
		if entryState(entry(orig, i)) == payloadFullyPresent {
			present = append(present, i)
		} else {
			absent = append(absent, i)
		}
	}
	if len(present) != 3 {
		t.Fatalf("qemu-img wrote %d blocks, want 3", len(present))
	}
	h, err := parseHeader(orig[header1Offset:])
	if err != nil {
		t.Fatal(err)
	}
	logOff := int64(h.LogOffset)
	pick := func(s []int) int { return s[rng.Intn(len(s))] }
	cases := []struct {
		name     string
		change   func(b []byte) []byte
		want     []string // substrings of thinblk's ERROR lines, one per line
		qemuCode int
	}{
		{"past-eof", func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[bat+int64(pick(absent))*8:], makeEntry(payloadFullyPresent, roundUp(int64(len(b)), mib)+int64(rng.Intn(100))*mib))
			return b
		}, []string{"start offset"}, 2},
		{"truncated", func(b []byte) []byte { return b[:len(b)-1-rng.Intn(mib-1)] },
			[]string{"end offset"}, 2},
		{"over-log", func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[bat+int64(pick(present))*8:], makeEntry(payloadFullyPresent, logOff))
			return b
		}, []string{"overlaps the log"}, 2},
		// qemu-img does not look for blocks shared by two entries.
		{"twice", func(b []byte) []byte {
			a := rng.Perm(len(present))
			binary.LittleEndian.PutUint64(b[bat+int64(present[a[0]])*8:], entry(b, present[a[1]]))
			return b
		}, []string{"overlaps the block of BAT entry"}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			name := filepath.Join(t.TempDir(), "bad.vhdx")
			if err := os.WriteFile(name, c.change(append([]byte(nil), orig...)), 0o644); err != nil {
				t.Fatal(err)
			}
			var o formattest.CheckRun
			if c.qemuCode == 2 {
				o = formattest.CheckBoth(t, name, 0)
			} else {
				q := formattest.RunCheck(t, "qemu-img", name)
				o = formattest.RunCheck(t, testutil.Thinblk(t), name)
				if q.Code != c.qemuCode {
					t.Fatalf("qemu-img exits %d, want %d\n%s", q.Code, c.qemuCode, q.Human)
				}
			}
			if o.Code != 2 {
				t.Fatalf("thinblk exits %d, want 2\n%s", o.Code, o.Human)
			}
			lines := formattest.ErrorLines(o.Human)
			if len(lines) != len(c.want) {
				t.Fatalf("%d ERROR lines, want %d:\n%s", len(lines), len(c.want), o.Human)
			}
			for k, w := range c.want {
				if !strings.Contains(lines[k], w) {
					t.Fatalf("ERROR line %q does not say %q", lines[k], w)
				}
			}
		})
	}
}

// TestCheckReplaysLog: an image whose BAT update and data are only in its
// log fails to check without -r in both programs (exit 1); with -r all
// both replay the log into the file (one repaired corruption, exit 0), and
// the two replayed files read the same, qemu-img checking ours clean.
func TestCheckReplaysLog(t *testing.T) {
	testutil.NeedTool(t, "qemu-img")
	b, g, batOff := buildImage(t, CreateParams{Size: 8 << 20, BlockSize: mib, LogSize: mib, Subformat: "dynamic"})
	data := make([]byte, mib)
	for i := range data {
		data[i] = byte(i/4096 + 1)
	}
	b, blockOff := appendBlock(b, data)
	batPage := append([]byte(nil), b[batOff:batOff+logSector]...)
	binary.LittleEndian.PutUint64(batPage[g.payloadIndex(2)*8:], makeEntry(payloadFullyPresent, blockOff))
	page := make([]byte, logSector)
	for i := range page {
		page[i] = 0x5a
	}
	logGUID := mustGUID("0a0b0c0d-1111-2222-3333-444455556677")
	active := buildLogEntry(4, 0, logGUID, int64(len(b)), []testLogOp{
		{off: batOff, page: batPage},
		{off: blockOff + 4096, zero: 2 * 4096},
		{off: blockOff + 6*4096, page: page},
		// Past the end of the file: the replay grows it.
		{off: blockOff + mib + 4096, page: page},
	})
	copy(b[mib:], active)
	h, _ := parseHeader(b[header2Offset:])
	h.LogGUID = logGUID
	h.SequenceNumber = 5
	copy(b[header2Offset:], h.encode())

	dir := t.TempDir()
	ours, theirs := filepath.Join(dir, "ours.vhdx"), filepath.Join(dir, "theirs.vhdx")
	for _, n := range []string{ours, theirs} {
		if err := os.WriteFile(n, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	o := formattest.CheckBoth(t, ours, 0)
	if o.Code != 1 {
		t.Fatalf("check of an image with a log: exit %d, want 1\n%s", o.Code, o.Human)
	}
	q := formattest.RunCheck(t, "qemu-img", theirs, "-r", "all")
	o = formattest.RunCheck(t, testutil.Thinblk(t), ours, "-r", "all")
	// runCheck ran each twice: the second (JSON) run found the log
	// replayed already. Compare the human runs' words and the exit codes.
	if q.Code != 0 || o.Code != 0 {
		t.Fatalf("check -r all: qemu-img exit %d, thinblk %d\nqemu-img:\n%s\nthinblk:\n%s", q.Code, o.Code, q.Human, o.Human)
	}
	for _, w := range []string{"were found and repaired", "1 corruptions", "No errors were found on the image."} {
		if !strings.Contains(q.Human, w) || !strings.Contains(o.Human, w) {
			t.Fatalf("check -r all output lacks %q\nqemu-img:\n%s\nthinblk:\n%s", w, q.Human, o.Human)
		}
	}
	if got, want := formattest.QemuRaw(t, ours, "vhdx"), formattest.QemuRaw(t, theirs, "vhdx"); firstDiff(got, want) >= 0 {
		t.Fatalf("replayed images read differently at %d", firstDiff(got, want))
	}
	if o := formattest.CheckBoth(t, ours, 0); o.Code != 0 {
		t.Fatalf("check after the replay: exit %d\n%s", o.Code, o.Human)
	}
	// The JSON of a replay, against a fresh copy for each program.
	for _, n := range []string{ours, theirs} {
		if err := os.WriteFile(n, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	qj, _, _ := testutil.Run(t, "qemu-img", "check", "-r", "all", "--output=json", theirs)
	oj, _, _ := testutil.Run(t, testutil.Thinblk(t), "check", "-r", "all", "--output=json", ours)
	var qm, om map[string]any
	if json.Unmarshal([]byte(qj), &qm) != nil || json.Unmarshal([]byte(oj), &om) != nil {
		t.Fatalf("JSON: qemu-img %q, thinblk %q", qj, oj)
	}
	delete(qm, "filename")
	delete(om, "filename")
	if !reflect.DeepEqual(qm, om) || qm["corruptions-fixed"] != float64(1) {
		t.Fatalf("check -r all JSON: thinblk %v, qemu-img %v (want corruptions-fixed 1)", om, qm)
	}
}

// FuzzCheck runs Check on mutated images that open (patches on the fuzz
// templates, see fuzzImage; the dirty-log one replayed in memory): every
// problem is one "ERROR: " line, never a panic or a giant allocation.
//
//	go test ./format/vhdx -run '^$' -fuzz FuzzCheck -fuzztime 60s
func FuzzCheck(f *testing.F) {
	le64 := func(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
	f.Add([]byte{0})
	f.Add([]byte{1})
	f.Add([]byte{2})
	// BAT entries of template 0: offsets past the end, overflowing, over
	// the header section, shared.
	bat := batOffset(f, fuzzTemplates(f)[0])
	entryPatch := func(idx int, v uint64) []byte {
		o := (int(bat) + idx*8) / 8
		return append([]byte{0, byte(o >> 16), byte(o >> 8), byte(o), 8}, le64(v)...)
	}
	f.Add(entryPatch(0, 1<<63|payloadFullyPresent))
	f.Add(entryPatch(1, payloadFullyPresent))
	f.Add(entryPatch(1, 100<<20|payloadFullyPresent))
	f.Add(entryPatch(1, binary.LittleEndian.Uint64(fuzzTemplates(f)[0][bat:])))
	f.Fuzz(func(t *testing.T, in []byte) {
		b := fuzzImage(t, in)
		node := mem.New(int64(len(b)))
		if err := node.Pwrite(b, 0, 0); err != nil {
			t.Fatal(err)
		}
		img, err := Open(node, image.FormatOpen{Name: "fuzz", ReadOnly: true, NoBacking: true, Options: map[string]string{"replay-log": "on"}})
		if err != nil {
			if img, err = Open(node, image.FormatOpen{Name: "fuzz", ReadOnly: true, NoBacking: true}); err != nil {
				return
			}
		}
		defer img.Close()
		problems, _, err := img.Check(false)
		if err != nil {
			return // the region table could not be read again: fine
		}
		for _, p := range problems {
			if !strings.HasPrefix(p, "ERROR: ") || strings.Contains(p, "\n") {
				t.Fatalf("problem line %q", p)
			}
		}
	})
}

package cli

import (
	"fmt"
	"math/rand"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/internal/testutil"
)

var lastEntry = regexp.MustCompile(`^\{ "start": (\d+), "length": (\d+), (.*)\}\]$`)

// clipQemuTail undoes qemu's rounding of a raw file's size up to a multiple
// of 512: qemu reports the bytes past EOF as zeros, thinblk reports the file
// as it is. The last entry is shortened to end at size, and dropped when
// nothing of it is left.
func clipQemuTail(t *testing.T, out string, size int64) string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	last := len(lines) - 1
	m := lastEntry.FindStringSubmatch(strings.TrimPrefix(lines[last], "["))
	if m == nil {
		t.Fatalf("unexpected qemu-img map tail %q", lines[last])
	}
	start, _ := strconv.ParseInt(m[1], 10, 64)
	length, _ := strconv.ParseInt(m[2], 10, 64)
	if start+length <= size {
		return out
	}
	prefix := ""
	if strings.HasPrefix(lines[last], "[") {
		prefix = "["
	}
	if start >= size {
		if last == 0 {
			t.Fatalf("qemu-img map has only a tail past EOF: %q", out)
		}
		lines = lines[:last]
		lines[last-1] = strings.TrimSuffix(lines[last-1], ",") + "]"
		return strings.Join(lines, "\n") + "\n"
	}
	lines[last] = fmt.Sprintf(`%s{ "start": %d, "length": %d, %s}]`, prefix, start, size-start, m[3])
	return strings.Join(lines, "\n") + "\n"
}

// buildSparseFile makes a file with a random mix of holes, random data,
// fallocated ranges, written zeros and punched holes, some of them
// unaligned; it returns the file's size.
func buildSparseFile(t *testing.T, r *rand.Rand, name string) int64 {
	size := int64(1+r.Intn(8)) << 20
	if r.Intn(3) == 0 {
		size += int64(1 + r.Intn(4095)) // odd size: not a multiple of 512 or 4096
	}
	newFile(t, "", name, size)
	ops := 2 + r.Intn(10)
	for i := 0; i < ops; i++ {
		n := int64(1+r.Intn(64)) * 4096
		if r.Intn(4) == 0 {
			n = int64(1 + r.Intn(300000))
		}
		n = min(n, size)
		off := r.Int63n(size - n + 1)
		if r.Intn(2) == 0 {
			off &^= 4095
		}
		switch r.Intn(5) {
		case 0, 1:
			writeAt(t, name, randomBytes(r, n), off)
		case 2:
			writeAt(t, name, make([]byte, n), off)
		case 3:
			fallocate(t, name, off, n, false)
		case 4:
			fallocate(t, name, off, n, true)
		}
	}
	return size
}

func TestMapMatchesQemuImg(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "fallocate")
	seed := testutil.Seed(t)
	r := rand.New(rand.NewSource(seed))
	dir := t.TempDir()
	for round := 0; round < 24; round++ {
		name := fmt.Sprintf("%s/sparse%d.raw", dir, round)
		size := buildSparseFile(t, r, name)
		want := clipQemuTail(t, testutil.MustRun(t, "qemu-img", "map", "--output=json", "-f", "raw", name), size)
		got := mustThinblk(t, "map", "--output=json", "-f", "raw", name)
		if got != want {
			t.Fatalf("round %d (size %d): thinblk map differs from qemu-img map\nthinblk:\n%s\nqemu-img:\n%s", round, size, got, want)
		}
		// Human output lists the data runs the same way.
		if size%512 == 0 {
			wantH := testutil.MustRun(t, "qemu-img", "map", "-f", "raw", name)
			gotH := mustThinblk(t, "map", "-f", "raw", name)
			if gotH != wantH {
				t.Fatalf("round %d: human map differs\nthinblk:\n%s\nqemu-img:\n%s", round, gotH, wantH)
			}
		}
		// A window of the map.
		if size%512 == 0 {
			start := r.Int63n(size)
			length := r.Int63n(size) + 1
			args := []string{"map", "--output=json", "-f", "raw", "--start-offset", strconv.FormatInt(start, 10),
				"--max-length", strconv.FormatInt(length, 10), name}
			want := testutil.MustRun(t, "qemu-img", args...)
			got := mustThinblk(t, args...)
			if got != want {
				t.Fatalf("round %d: map --start-offset %d --max-length %d differs\nthinblk:\n%s\nqemu-img:\n%s", round, start, length, got, want)
			}
		}
	}
}

func TestMapEdgeCases(t *testing.T) {
	testutil.NeedTool(t, "qemu-img")
	dir := t.TempDir()
	empty := newFile(t, dir, "empty.raw", 0)
	full := newFile(t, dir, "full.raw", 1<<20)
	writeAt(t, full, make([]byte, 1<<20), 0)
	for _, c := range [][]string{
		{"map", "--output=json", "-f", "raw", empty},
		{"map", "-f", "raw", empty},
		{"map", "--output=json", "-f", "raw", full},
		{"map", "-f", "raw", full},
		{"map", "--output=json", "-f", "raw", "--start-offset", "2M", full},
		{"map", "--output=json", "-f", "raw", "--start-offset", "1M", full},
		{"map", "--output=json", "-f", "raw", "--max-length", "0", full},
		{"map", "--output=json", full}, // probed raw
	} {
		want := testutil.MustRun(t, "qemu-img", c...)
		got := mustThinblk(t, c...)
		if got != want {
			t.Errorf("%v:\nthinblk:\n%s\nqemu-img:\n%s", c, got, want)
		}
	}
}

func TestMapLoopDeviceAllData(t *testing.T) {
	testutil.NeedTool(t, "qemu-img")
	dir := t.TempDir()
	backing := newFile(t, dir, "loop.raw", 4<<20)
	writeAt(t, backing, []byte("data"), 1<<20)
	dev := testutil.LoopDevice(t, backing)
	want := testutil.MustRun(t, "qemu-img", "map", "--output=json", "-f", "raw", dev)
	got := mustThinblk(t, "map", "--output=json", "-f", "raw", dev)
	if got != want {
		t.Fatalf("loop device map:\nthinblk:\n%s\nqemu-img:\n%s", got, want)
	}
	wantLine := fmt.Sprintf(`[{ "start": 0, "length": %d, "depth": 0, "present": true, "zero": false, "data": true, "offset": 0}]`+"\n", 4<<20)
	if got != wantLine {
		t.Fatalf("loop device map is not all data:\n%s", got)
	}
}

func TestMapHugeSparse(t *testing.T) {
	// A 1 TiB sparse file with a few data runs: the map must come back fast
	// (no per-cluster walking) and small.
	dir := t.TempDir()
	name := newFile(t, dir, "huge.raw", 1<<40)
	for _, off := range []int64{0, 1 << 30, 777 << 30, 1<<40 - 4096} {
		writeAt(t, name, []byte("x"), off)
	}
	out := mustThinblk(t, "map", "--output=json", "-f", "raw", name)
	if n := strings.Count(out, "\n"); n != 7 {
		t.Fatalf("huge sparse map has %d lines, want 7:\n%s", n, out)
	}
}

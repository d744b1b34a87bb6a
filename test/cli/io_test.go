package cli

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/internal/testutil"
)

// Drops of st_blocks are checked against 3/4 of the range: punching a hole
// can cost the filesystem a metadata block.

// filledFile makes a fully allocated file of size bytes of 0xab.
func filledFile(t *testing.T, dir, name string, size int64) string {
	t.Helper()
	p := newFile(t, dir, name, size)
	b := make([]byte, size)
	for i := range b {
		b[i] = 0xab
	}
	writeAt(t, p, b, 0)
	return p
}

func TestIOZeroAndDiscardOnFile(t *testing.T) {
	testutil.NeedTool(t, "qemu-img")
	dir := t.TempDir()
	const mib = 1 << 20

	// write -z -u: deallocates (st_blocks drops by the range).
	f := filledFile(t, dir, "unmap.raw", 4*mib)
	before := stBlocks(t, f)
	mustThinblk(t, "io", "-f", "raw", "-c", "write -z -u 1M 1M", f)
	if after := stBlocks(t, f); before-after < mib/512*3/4 {
		t.Fatalf("write -z -u: st_blocks %d -> %d, want a drop of %d", before, after, mib/512)
	}
	mustThinblk(t, "io", "-f", "raw", "-c", "read -P 0 1M 1M", "-c", "read -P 0xab 0 1M", "-c", "read -P 0xab 2M 2M", f)

	// write -z without -u: reads zero, keeps its blocks.
	f = filledFile(t, dir, "zero.raw", 4*mib)
	before = stBlocks(t, f)
	mustThinblk(t, "io", "-f", "raw", "-c", "write -z 1M 1M", f)
	if after := stBlocks(t, f); after < before {
		t.Fatalf("write -z: st_blocks %d -> %d, want no drop", before, after)
	}
	mustThinblk(t, "io", "-f", "raw", "-c", "read -P 0 1M 1M", f)

	// discard (default -d unmap, as qemu-io): punches a hole.
	f = filledFile(t, dir, "discard.raw", 4*mib)
	before = stBlocks(t, f)
	mustThinblk(t, "io", "-f", "raw", "-c", "discard 1M 1M", f)
	if after := stBlocks(t, f); before-after < mib/512*3/4 {
		t.Fatalf("discard: st_blocks %d -> %d, want a drop of %d", before, after, mib/512)
	}
	mustThinblk(t, "io", "-f", "raw", "-c", "read -P 0 1M 1M", f)
	m := mustThinblk(t, "map", "--output=json", "-f", "raw", f)
	if !strings.Contains(m, `{ "start": 1048576, "length": 1048576, "depth": 0, "present": true, "zero": true, "data": false, "offset": 1048576}`) {
		t.Fatalf("map after discard does not show the hole:\n%s", m)
	}

	// -d ignore: discard does nothing.
	f = filledFile(t, dir, "ignore.raw", 4*mib)
	before = stBlocks(t, f)
	mustThinblk(t, "io", "-f", "raw", "-d", "ignore", "-c", "discard 1M 1M", f)
	if after := stBlocks(t, f); after != before {
		t.Fatalf("discard with -d ignore: st_blocks %d -> %d, want unchanged", before, after)
	}
	mustThinblk(t, "io", "-f", "raw", "-c", "read -P 0xab 0 4M", f)
}

func TestIOOnLoopDevice(t *testing.T) {
	testutil.NeedTool(t, "qemu-img")
	dir := t.TempDir()
	const mib = 1 << 20
	backing := filledFile(t, dir, "loop.raw", 8*mib)
	dev := testutil.LoopDevice(t, backing)

	// BLKZEROOUT: the loop driver zeroes the backing file's range keeping
	// its blocks (fallocate ZERO_RANGE): reads zero, SEEK_DATA sees no data,
	// st_blocks does not drop. Written zero bytes would leave data there.
	before := stBlocks(t, backing)
	mustThinblk(t, "io", "-f", "raw", "-c", "write -z 1M 1M", dev)
	if after := stBlocks(t, backing); after < before {
		t.Fatalf("BLKZEROOUT: backing st_blocks %d -> %d, want no drop", before, after)
	}
	m := testutil.MustRun(t, "qemu-img", "map", "--output=json", "-f", "raw", backing)
	if !strings.Contains(m, `{ "start": 1048576, "length": 1048576, "depth": 0, "present": true, "zero": true, "data": false, "offset": 1048576}`) {
		t.Fatalf("after write -z on the loop device, the backing file's range is not zeroed natively:\n%s", m)
	}

	// BLKDISCARD: the loop driver punches the backing file.
	before = stBlocks(t, backing)
	mustThinblk(t, "io", "-f", "raw", "-c", "discard 4M 2M", dev)
	if after := stBlocks(t, backing); before-after < 2*mib/512*3/4 {
		t.Fatalf("BLKDISCARD: backing st_blocks %d -> %d, want a drop of %d", before, after, 2*mib/512)
	}
	// Everything else is intact, and the device still maps as all data.
	mustThinblk(t, "io", "-f", "raw", "-c", "read -P 0 1M 1M", "-c", "read -P 0xab 0 1M", "-c", "read -P 0xab 2M 2M", "-c", "read -P 0xab 6M 2M", dev)
	got := mustThinblk(t, "map", "--output=json", "-f", "raw", dev)
	if !strings.HasPrefix(got, `[{ "start": 0, "length": 8388608, "depth": 0, "present": true, "zero": false, "data": true`) {
		t.Fatalf("loop device map:\n%s", got)
	}
}

// TestIOMatchesQemuIO runs the same random command sequence through
// thinblk io and qemu-io on two copies of an image: the printed lines (less
// timings), the exit codes, the resulting bytes and the maps must agree.
func TestIOMatchesQemuIO(t *testing.T) {
	testutil.NeedTool(t, "qemu-io", "qemu-img")
	seed := testutil.Seed(t)
	r := rand.New(rand.NewSource(seed))
	dir := t.TempDir()
	const size = 4 << 20
	for round := 0; round < 6; round++ {
		a := newFile(t, dir, fmt.Sprintf("a%d.raw", round), size)
		b := newFile(t, dir, fmt.Sprintf("b%d.raw", round), size)
		args := []string{"-f", "raw"}
		for i := 0; i < 12; i++ {
			n := int64(1+r.Intn(256)) * 4096
			if r.Intn(4) == 0 {
				n = int64(1 + r.Intn(100000))
			}
			off := r.Int63n(size - n + 1)
			if r.Intn(3) != 0 {
				off &^= 4095
			}
			var c string
			switch r.Intn(6) {
			case 0, 1:
				c = fmt.Sprintf("write -P 0x%02x %d %d", r.Intn(256), off, n)
			case 2:
				c = fmt.Sprintf("write -z %d %d", off, n)
			case 3:
				c = fmt.Sprintf("write -z -u %d %d", off, n)
			case 4:
				c = fmt.Sprintf("discard %d %d", off, n)
			case 5:
				// Some of these fail verification; both must say so.
				c = fmt.Sprintf("read -P 0x%02x %d %d", []int{0, 0xcd, r.Intn(256)}[r.Intn(3)], off, n)
			}
			args = append(args, "-c", c)
		}
		args = append(args, "-c", "read -q 0 4M", "-c", "flush")
		qout, qerr, qcode := testutil.Run(t, "qemu-io", append(args, a)...)
		tout, terr, tcode := thinblk(t, append(append([]string{"io"}, args...), b)...)
		if dropTimings(qout) != dropTimings(tout) || qcode != tcode {
			t.Fatalf("round %d, commands %q:\nqemu-io (exit %d):\n%s%s\nthinblk io (exit %d):\n%s%s", round, args,
				qcode, qout, qerr, tcode, tout, terr)
		}
		ab, _ := os.ReadFile(a)
		bb, _ := os.ReadFile(b)
		if string(ab) != string(bb) {
			t.Fatalf("round %d: contents differ after %q", round, args)
		}
		qm := testutil.MustRun(t, "qemu-img", "map", "--output=json", "-f", "raw", a)
		tm := testutil.MustRun(t, "qemu-img", "map", "--output=json", "-f", "raw", b)
		if strings.ReplaceAll(qm, a, "") != strings.ReplaceAll(tm, b, "") {
			t.Fatalf("round %d: allocation differs after %q\nqemu-io:\n%s\nthinblk io:\n%s", round, args, qm, tm)
		}
	}
}

func TestIOOutputShapes(t *testing.T) {
	testutil.NeedTool(t, "qemu-io")
	dir := t.TempDir()
	a := newFile(t, dir, "a.raw", 1<<20)
	b := newFile(t, dir, "b.raw", 1<<20)
	args := []string{"-f", "raw", "-c", "write 1 3", "-c", "read -v 0 40", "-c", "write -q 0 512",
		"-c", "read -P 0xcd 0 512", "-c", "read -P 0xcd 512 512", "-c", "map", "-c", "length", "-c", "aio_flush"}
	qout, _, qcode := testutil.Run(t, "qemu-io", append(args, a)...)
	tout, _, tcode := thinblk(t, append(append([]string{"io"}, args...), b)...)
	if dropTimings(qout) != dropTimings(tout) || qcode != tcode {
		t.Fatalf("qemu-io (exit %d):\n%s\nthinblk io (exit %d):\n%s", qcode, qout, tcode, tout)
	}
}

func TestIOCommandsFromStdin(t *testing.T) {
	dir := t.TempDir()
	f := newFile(t, dir, "s.raw", 1<<20)
	cmd := testutil.Thinblk(t)
	script := "# a comment\nwrite -P 0x42 0 4k\n\nread -P 0x42 0 4k\n"
	sh := fmt.Sprintf("printf '%s' | %s io -f raw %s", strings.ReplaceAll(script, "\n", `\n`), cmd, f)
	out := testutil.MustRun(t, "sh", "-c", sh)
	if !strings.Contains(out, "wrote 4096/4096 bytes at offset 0") || !strings.Contains(out, "read 4096/4096 bytes at offset 0") {
		t.Fatalf("stdin commands output:\n%s", out)
	}
}

// TestIOCacheModes runs unaligned writes, zeroes and discards under every
// cache mode (none and directsync use O_DIRECT, so the unaligned requests
// go through read-modify-write) and checks the bytes.
func TestIOCacheModes(t *testing.T) {
	dir := t.TempDir()
	for _, mode := range []string{"writeback", "none", "writethrough", "directsync", "unsafe"} {
		f := filledFile(t, dir, mode+".raw", 1<<20)
		mustThinblk(t, "io", "-t", mode, "-f", "raw",
			"-c", "write -P 7 1 3", "-c", "write -z 5000 4090", "-c", "write -z -u 10000 70000",
			"-c", "discard 100000 5000", "-c", "flush", f)
		out := mustThinblk(t, "io", "-r", "-t", mode, "-f", "raw",
			"-c", "read -P 0xab 0 1", "-c", "read -P 7 1 3", "-c", "read -P 0xab 4 4996",
			"-c", "read -P 0 5000 4090", "-c", "read -P 0xab 9090 910", "-c", "read -P 0 10000 70000",
			"-c", "read -P 0xab 80000 20000", "-c", "read -P 0 100000 5000", "-c", "read -P 0xab 105000 943576", f)
		if strings.Contains(out, "verification failed") {
			t.Fatalf("cache=%s:\n%s", mode, out)
		}
	}
}

func TestIOCompressedSleepSigraise(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	dir := t.TempDir()
	q := filepath.Join(dir, "q.qcow2")
	tb := filepath.Join(dir, "t.qcow2")
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", q, "1M")
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", tb, "1M")
	cmds := []string{"-c", "write -c -P 0x11 0 128k", "-c", "write -c -P 0x22 960k 64k", "-c", "sleep 10",
		"-c", "write -z -n 256k 64k", "-c", "read -P 0x11 0 128k"}
	qout, _, qcode := testutil.Run(t, "qemu-io", append(cmds, q)...)
	tout, terr, tcode := thinblk(t, append(append([]string{"io"}, cmds...), tb)...)
	if dropTimings(qout) != dropTimings(tout) || qcode != tcode {
		t.Fatalf("qemu-io (exit %d):\n%s\nthinblk io (exit %d):\n%s%s", qcode, qout, tcode, tout, terr)
	}
	qm := testutil.MustRun(t, "qemu-img", "map", "--output=json", q)
	tm := testutil.MustRun(t, "qemu-img", "map", "--output=json", tb)
	if qm != tm {
		t.Fatalf("maps differ after compressed writes\nqemu-io:\n%s\nthinblk io:\n%s", qm, tm)
	}
	testutil.MustRun(t, "qemu-img", "check", tb)
	if out := testutil.MustRun(t, "qemu-img", "compare", q, tb); !strings.Contains(out, "identical") {
		t.Fatalf("qemu-img compare: %s", out)
	}

	// write -c on raw: one clear line.
	raw := newFile(t, dir, "r.raw", 1<<20)
	stdout, stderr, code := thinblk(t, "io", "-f", "raw", "-c", "write -c 0 64k", raw)
	checkOneLineError(t, []string{"write -c"}, stdout, stderr, code, "compressed")

	// sigraise 9 kills thinblk io on the spot: the later write never lands.
	_, _, code = thinblk(t, "io", "-f", "raw", "-c", "write -P 1 0 4k", "-c", "sigraise 9", "-c", "write -P 2 0 4k", raw)
	if code != -1 && code != 137 {
		t.Fatalf("sigraise 9: exit %d, want death by SIGKILL", code)
	}
	mustThinblk(t, "io", "-r", "-f", "raw", "-c", "read -P 1 0 4k", raw)
}

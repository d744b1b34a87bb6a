package cli

import (
	"fmt"
	"math/rand"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/internal/testutil"
)

// randomQemuIO applies n random qemu-io commands (some unaligned) to img.
func randomQemuIO(t *testing.T, r *rand.Rand, format, img string, size int64, n int) {
	t.Helper()
	args := []string{"-f", format}
	for i := 0; i < n; i++ {
		l := int64(1+r.Intn(32)) * 16384
		if r.Intn(4) == 0 {
			l = int64(1 + r.Intn(70000))
		}
		l = min(l, size)
		off := r.Int63n(size - l + 1)
		if r.Intn(3) != 0 {
			off &^= 511
		}
		switch r.Intn(5) {
		case 0, 1:
			args = append(args, "-c", fmt.Sprintf("write -P 0x%02x %d %d", 1+r.Intn(255), off, l))
		case 2:
			args = append(args, "-c", fmt.Sprintf("write -z %d %d", off, l))
		case 3:
			args = append(args, "-c", fmt.Sprintf("write -z -u %d %d", off, l))
		case 4:
			args = append(args, "-c", fmt.Sprintf("discard %d %d", off, l))
		}
	}
	testutil.MustRun(t, "qemu-io", append(args, img)...)
}

// TestChainMapMatchesQemuImg builds random raw <- qcow2 <- qcow2 chains
// with qemu-img and qemu-io (overlays larger and smaller than their backing
// files) and compares thinblk map and info with qemu-img's, byte for byte.
func TestChainMapMatchesQemuImg(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	seed := testutil.Seed(t)
	r := rand.New(rand.NewSource(seed))
	for round := 0; round < 6; round++ {
		dir := t.TempDir()
		base := filepath.Join(dir, "base.raw")
		mid := filepath.Join(dir, "mid.qcow2")
		top := filepath.Join(dir, "top.qcow2")
		baseSize := int64(1+r.Intn(4)) << 20
		midSize := baseSize + int64(r.Intn(3)-1)*(512<<10)
		topSize := midSize + int64(r.Intn(3))*(256<<10)
		cluster := []string{"4096", "65536", "2097152"}[r.Intn(3)]
		testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "raw", base, fmt.Sprint(baseSize))
		randomQemuIO(t, r, "raw", base, baseSize, 6)
		testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size="+cluster,
			"-b", "base.raw", "-F", "raw", mid, fmt.Sprint(midSize))
		randomQemuIO(t, r, "qcow2", mid, midSize, 8)
		testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", top, fmt.Sprint(topSize))
		randomQemuIO(t, r, "qcow2", top, topSize, 8)

		for _, img := range []string{top, mid} {
			want := testutil.MustRun(t, "qemu-img", "map", "--output=json", img)
			got := mustThinblk(t, "map", "--output=json", img)
			if got != want {
				t.Fatalf("round %d (cluster %s, sizes %d/%d/%d): map --output=json %s differs\nthinblk:\n%s\nqemu-img:\n%s",
					round, cluster, baseSize, midSize, topSize, filepath.Base(img), got, want)
			}
			want = testutil.MustRun(t, "qemu-img", "map", img)
			got = mustThinblk(t, "map", img)
			if got != want {
				t.Fatalf("round %d: human map %s differs\nthinblk:\n%s\nqemu-img:\n%s", round, filepath.Base(img), got, want)
			}
			// qemu-io's map: what the top layer itself allocates.
			want = testutil.MustRun(t, "qemu-io", "-r", "-c", "map", img)
			got = mustThinblk(t, "io", "-r", "-c", "map", img)
			if got != want {
				t.Fatalf("round %d: io map %s differs\nthinblk:\n%s\nqemu-io:\n%s", round, filepath.Base(img), got, want)
			}
		}
		// info --backing-chain, human and JSON, is qemu-img's plus thinblk's
		// highest allocated offset.
		for _, output := range []string{"human", "json"} {
			want := testutil.MustRun(t, "qemu-img", "info", "--backing-chain", "--output="+output, top)
			got := dropLines(mustThinblk(t, "info", "--backing-chain", "--output="+output, top), "highest")
			if got != want {
				t.Fatalf("round %d: info --backing-chain --output=%s differs\nthinblk:\n%s\nqemu-img:\n%s", round, output, got, want)
			}
		}
	}
}

// dropLines removes the lines containing sub.
func dropLines(s, sub string) string {
	var keep []string
	for _, l := range strings.SplitAfter(s, "\n") {
		if !strings.Contains(l, sub) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "")
}

// TestProbedRawNeverFollowsBacking: a raw image whose content is a qcow2
// header naming a backing file is probed as qcow2 only without -f; with
// -f raw thinblk never opens the named file (DESIGN.md rule 7), and a
// probed-raw image refuses a write that would plant such a header.
func TestProbedRawNeverFollowsBacking(t *testing.T) {
	testutil.NeedTool(t, "qemu-img")
	dir := t.TempDir()
	evil := filepath.Join(dir, "evil.qcow2")
	testutil.MustRun(t, "qemu-img", "create", "-q", "-u", "-f", "qcow2", "-b", "/nonexistent/secret", "-F", "raw", evil, "1M")
	// -f raw: the header is just data.
	out := mustThinblk(t, "map", "--output=json", "-f", "raw", evil)
	if !strings.Contains(out, `"depth": 0`) || strings.Contains(out, `"depth": 1`) {
		t.Fatalf("-f raw map:\n%s", out)
	}
	info := mustThinblk(t, "info", "-f", "raw", evil)
	if !strings.Contains(info, "file format: raw") || strings.Contains(info, "secret") {
		t.Fatalf("-f raw info:\n%s", info)
	}
	// A probed raw disk whose guest writes a qcow2 header: refused.
	disk := newFile(t, dir, "guest.raw", 1<<20)
	// Version 3, then the magic "QFI\xfb" byte by byte: the write that
	// completes the header is the one refused.
	plant := []string{"-c", "write -P 3 7 1", "-c", "write -P 0x51 0 1", "-c", "write -P 0x46 1 1",
		"-c", "write -P 0x49 2 1", "-c", "write -P 0xfb 3 1"}
	stdout, stderr, code := thinblk(t, append(append([]string{"io"}, plant...), disk)...)
	if code != 1 || !strings.Contains(stderr, "look like a qcow2 image") || strings.Count(stdout, "wrote ") != 4 ||
		strings.Count(stderr, "\n") != 1 {
		t.Fatalf("planting a qcow2 header into a probed raw image: exit %d\n%s%s", code, stdout, stderr)
	}
	if out := mustThinblk(t, "info", disk); !strings.Contains(out, "file format: raw") {
		t.Fatalf("after the refused write:\n%s", out)
	}
	// With -f raw the guest owns all of its disk.
	mustThinblk(t, append(append([]string{"io", "-f", "raw"}, plant...), disk)...)
}

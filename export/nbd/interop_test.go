package nbd

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/thinblk/thinblk/block"
	_ "github.com/thinblk/thinblk/format/qcow2"
	_ "github.com/thinblk/thinblk/format/raw"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/internal/testutil"
)

// serveImage opens path with package image and serves it as export "disk"
// (e fills the other Export fields). It returns the nbd+unix URL.
func serveImage(t *testing.T, path, format string, e *Export, ro bool) string {
	t.Helper()
	node, err := image.Open(path, image.Options{Format: format, ReadOnly: ro, Discard: e.Discard.String()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() }) // registered first: runs after the server's shutdown
	e.Name, e.Node, e.ReadOnly = "disk", node, ro
	s := &Server{Exports: map[string]*Export{"disk": e}}
	_, uri := startServer(t, s, "disk")
	return uri
}

// startQemuNbd serves img with qemu-nbd (a golden peer) and returns its URL.
func startQemuNbd(t *testing.T, img string, args ...string) string {
	t.Helper()
	testutil.NeedTool(t, "qemu-nbd")
	sock := filepath.Join(t.TempDir(), "q.sock")
	cmd := exec.Command("qemu-nbd", append(append([]string{"-t", "-k", sock}, args...), img)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	waitSocket(t, sock)
	return "nbd+unix:///?socket=" + sock
}

func waitSocket(t *testing.T, sock string) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if fi, err := os.Stat(sock); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("socket %s never appeared", sock)
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	testutil.NeedTool(t, name)
	cmd := exec.Command(name, args...)
	if name == "nbdsh" {
		cmd.Env = append(os.Environ(), "PATH=/usr/bin:"+os.Getenv("PATH"))
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// nbdMap is nbdinfo --map --json for one context.
func nbdMap(t *testing.T, uri, context string) string {
	t.Helper()
	return run(t, "nbdinfo", "--map="+context, "--json", uri)
}

// qemuMapEntry is one line of qemu-img map --output=json over NBD.
type qemuMapEntry struct {
	Start, Length int64
	Zero, Data    bool
}

// qemuMap runs qemu-img map and keeps start, length, zero and data,
// merging neighbours that agree (over NBD qemu cannot see depth).
func qemuMap(t *testing.T, args ...string) []qemuMapEntry {
	t.Helper()
	out := run(t, "qemu-img", append([]string{"map", "--output=json"}, args...)...)
	var raw []qemuMapEntry
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatalf("qemu-img map output: %v\n%s", err, out)
	}
	var m []qemuMapEntry
	for _, e := range raw {
		if k := len(m); k > 0 && m[k-1].Zero == e.Zero && m[k-1].Data == e.Data && m[k-1].Start+m[k-1].Length == e.Start {
			m[k-1].Length += e.Length
			continue
		}
		m = append(m, e)
	}
	return m
}

// makeSparseRaw builds a raw image with data, holes, written zeros and
// fallocated ranges at random places.
func makeSparseRaw(t *testing.T, path string, size int64, seed int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(seed))
	for i := 0; i < 12; i++ {
		off := rng.Int63n(size/4096) * 4096
		n := min(int64(rng.Intn(64)+1)*4096, size-off)
		p := make([]byte, n)
		switch rng.Intn(3) {
		case 0:
			rng.Read(p)
			f.WriteAt(p, off)
		case 1:
			f.WriteAt(p, off) // written zeros: data to qemu
		case 2:
			syscall.Fallocate(int(f.Fd()), 0, off, n)
		}
	}
}

func TestMapRawMatchesQemu(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "nbdinfo", "qemu-nbd")
	seed := testutil.Seed(t)
	img := filepath.Join(t.TempDir(), "img.raw")
	makeSparseRaw(t, img, 8<<20, seed)
	uri := serveImage(t, img, "raw", &Export{AllocationDepth: true}, true)
	golden := startQemuNbd(t, img, "-r", "-f", "raw", "-A")

	local := qemuMap(t, "-f", "raw", img)
	if got := qemuMap(t, "-f", "raw", uri); !equalMaps(got, local) {
		t.Errorf("qemu-img map over thinblk:\n%v\nlocal:\n%v", got, local)
	}
	for _, ctx := range []string{"base:allocation", "qemu:allocation-depth"} {
		got, want := nbdMap(t, uri, ctx), nbdMap(t, golden, ctx)
		if got != want {
			t.Errorf("nbdinfo --map=%s: thinblk\n%s\nqemu-nbd\n%s", ctx, got, want)
		}
	}
}

func equalMaps(a, b []qemuMapEntry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// makeChain builds base.qcow2 <- top.qcow2 with data in both layers, zero
// clusters, a discarded cluster and unallocated ranges.
func makeChain(t *testing.T, dir string) string {
	t.Helper()
	base, top := filepath.Join(dir, "base.qcow2"), filepath.Join(dir, "top.qcow2")
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", base, "8M")
	run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 1 0 1M", "-c", "write -z 2M 512k", "-c", "write -P 3 6M 64k", base)
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", top)
	run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 2 512k 1M", "-c", "write -z 3M 64k",
		"-c", "write -z -u 4M 128k", "-c", "discard 0 64k", "-c", "write -P 4 7M 4k", top)
	return top
}

// makeQcow2Kinds builds single qcow2 images with the cluster kinds a map
// must tell apart: preallocated metadata (anchored zeros), zero clusters
// with and without storage, compressed clusters, extended L2 subclusters.
func makeQcow2Kinds(t *testing.T, dir string) []string {
	t.Helper()
	var imgs []string
	for i, opts := range []string{"preallocation=metadata", "extended_l2=on,cluster_size=128k", "cluster_size=64k"} {
		img := filepath.Join(dir, fmt.Sprintf("k%d.qcow2", i))
		run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-o", opts, img, "8M")
		run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 7 0 1M", "-c", "write -z 1M 512k", "-c", "write -z -u 2M 512k",
			"-c", "discard 512k 64k", "-c", "write -P 8 4100k 8k", "-c", "write -z 5M 4k", img)
		imgs = append(imgs, img)
	}
	src := filepath.Join(dir, "src.raw")
	makeSparseRaw(t, src, 8<<20, 7)
	comp := filepath.Join(dir, "comp.qcow2")
	run(t, "qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", src, comp)
	return append(imgs, comp)
}

// makePreallocKinds builds qcow2 images whose data clusters lie over holes
// of the host file, where qemu asks the file (metadata preallocation, or
// an image that looks like it) or must not (falloc, full, a few punched
// clusters): qemu-nbd then says ZERO for some data, and only there.
func makePreallocKinds(t *testing.T, dir string) []string {
	t.Helper()
	var imgs []string
	write := []string{"-c", "write -P 7 0 300k", "-c", "write -z 400k 200k", "-c", "write -z -u 700k 100k",
		"-c", "discard 800k 64k", "-c", "write -P 9 900k 5k", "-c", "write -P 1 3M 2k"}
	for i, opts := range []string{"preallocation=metadata,cluster_size=4k", "preallocation=metadata,cluster_size=2M",
		"preallocation=metadata,extended_l2=on", "preallocation=falloc", "preallocation=full"} {
		img := filepath.Join(dir, fmt.Sprintf("p%d.qcow2", i))
		run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-o", opts, img, "6M")
		run(t, "qemu-io", append(append([]string{"-f", "qcow2"}, write...), img)...)
		imgs = append(imgs, img)
	}
	// The file ends inside the last data cluster: qemu reads zeros past
	// the end of the file.
	short := filepath.Join(dir, "short.qcow2")
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-o", "preallocation=metadata", short, "6M")
	run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 3 6080k 60k", short)
	if fi, err := os.Stat(short); err != nil {
		t.Fatal(err)
	} else if err := os.Truncate(short, fi.Size()-30000); err != nil {
		t.Fatal(err)
	}
	imgs = append(imgs, short)
	// Ordinary images with data clusters punched on the host: a few (qemu
	// does not look at the file) and many (it now does).
	for _, n := range []int{2, 40} {
		img := filepath.Join(dir, fmt.Sprintf("punch%d.qcow2", n))
		run(t, "qemu-img", "create", "-q", "-f", "qcow2", img, "8M")
		run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 5 0 5M", "-c", "write -P 6 6M 1M", img)
		punchDataClusters(t, img, n)
		imgs = append(imgs, img)
	}
	return imgs
}

// punchDataClusters punches the host ranges of the first n 64 KiB clusters
// of img's data, taking every other one, with fallocate(1).
func punchDataClusters(t *testing.T, img string, n int) {
	t.Helper()
	var m []struct {
		Start, Length int64
		Data          bool
		Offset        *int64
	}
	if err := json.Unmarshal([]byte(run(t, "qemu-img", "map", "--output=json", img)), &m); err != nil {
		t.Fatal(err)
	}
	for _, e := range m {
		if !e.Data || e.Offset == nil {
			continue
		}
		for o := *e.Offset; o < *e.Offset+e.Length && n > 0; o, n = o+128<<10, n-1 {
			run(t, "fallocate", "--punch-hole", "-o", fmt.Sprint(o), "-l", fmt.Sprint(64<<10), img)
		}
	}
}

func TestMapQcow2MatchesQemuNbd(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io", "nbdinfo", "qemu-nbd", "fallocate")
	dir := t.TempDir()
	imgs := append([]string{makeChain(t, dir)}, makeQcow2Kinds(t, dir)...)
	imgs = append(imgs, makePreallocKinds(t, dir)...)
	for _, img := range imgs {
		t.Run(filepath.Base(img), func(t *testing.T) {
			uri := serveImage(t, img, "qcow2", &Export{AllocationDepth: true}, true)
			golden := startQemuNbd(t, img, "-r", "-f", "qcow2", "-A")
			for _, ctx := range []string{"base:allocation", "qemu:allocation-depth"} {
				got, want := nbdMap(t, uri, ctx), nbdMap(t, golden, ctx)
				if got != want {
					t.Errorf("nbdinfo --map=%s: thinblk\n%s\nqemu-nbd\n%s", ctx, got, want)
				}
			}
			if got, want := qemuMap(t, "-f", "raw", uri), qemuMap(t, "-f", "raw", golden); !equalMaps(got, want) {
				t.Errorf("qemu-img map: thinblk\n%v\nqemu-nbd\n%v", got, want)
			}
			// The content is the image's.
			run(t, "qemu-img", "compare", "-f", "raw", "-F", "qcow2", uri, img)
		})
	}
}

// TestQemuIoThroughNBD runs the same qemu-io commands locally and through
// thinblk on two copies of an image: content and map must agree.
func TestQemuIoThroughNBD(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	cmds := []string{"-c", "write -P 0xab 0 1M", "-c", "write -z 1M 1M", "-c", "write -z -u 2M 1M",
		"-c", "discard 3M 1M", "-c", "write -P 0xcd 5M 64k"}
	// Reads come last: on ext4 reading a ZERO_RANGE'd (unwritten) range
	// through the page cache makes SEEK_DATA report it as data, and the
	// server answers such reads from block status without reading.
	reads := []string{"-c", "read -P 0xab 0 1M", "-c", "read -P 0 1M 2M", "-c", "read -P 0xcd 5M 64k"}
	for _, format := range []string{"raw", "qcow2"} {
		t.Run(format, func(t *testing.T) {
			dir := t.TempDir()
			a, b := filepath.Join(dir, "a."+format), filepath.Join(dir, "b."+format)
			for _, p := range []string{a, b} {
				run(t, "qemu-img", "create", "-q", "-f", format, p, "8M")
				run(t, "qemu-io", "-f", format, "-c", "write -P 0x11 3M 2M", p)
			}
			run(t, "qemu-io", append(append([]string{"-f", format, "-d", "unmap"}, cmds...), a)...)
			uri := serveImage(t, b, format, &Export{Discard: block.DiscardUnmap}, false)
			run(t, "qemu-io", append(append([]string{"-f", "raw"}, cmds...), uri)...)
			if got, want := qemuMap(t, "-f", "raw", uri), qemuMap(t, "-f", format, a); !equalMaps(got, want) {
				t.Errorf("map after the same commands: through NBD\n%v\nlocal\n%v", got, want)
			}
			run(t, "qemu-io", append(append([]string{"-f", "raw"}, reads...), uri)...)
			run(t, "qemu-io", append(append([]string{"-f", format}, reads...), a)...)
			run(t, "qemu-img", "compare", "-f", "raw", "-F", format, uri, a)
		})
	}
}

// TestDiscardPolicy: --discard=unmap reclaims space, the default ignore
// does not (and does not even advertise TRIM).
func TestDiscardPolicy(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io", "nbdinfo")
	for _, format := range []string{"raw", "qcow2"} {
		for _, mode := range []block.DiscardMode{block.DiscardIgnore, block.DiscardUnmap} {
			t.Run(format+"-"+mode.String(), func(t *testing.T) {
				img := filepath.Join(t.TempDir(), "img")
				run(t, "qemu-img", "create", "-q", "-f", format, img, "16M")
				run(t, "qemu-io", "-f", format, "-c", "write -P 0x5a 0 8M", img)
				before := testutil.HostBytes(t, img)
				uri := serveImage(t, img, format, &Export{Discard: mode}, false)
				canTrim := exec.Command("nbdinfo", "--can", "trim", uri).Run() == nil
				if canTrim != (mode == block.DiscardUnmap) {
					t.Errorf("can_trim=%v with discard=%v", canTrim, mode)
				}
				run(t, "qemu-io", "-f", "raw", "-c", "discard 0 8M", uri)
				after := testutil.HostBytes(t, img)
				t.Logf("%s discard=%v: allocated %d -> %d", format, mode, before, after)
				if mode == block.DiscardUnmap && after > before-6<<20 {
					t.Errorf("discard=unmap freed only %d of 8 MiB", before-after)
				}
				if mode == block.DiscardIgnore && after < before {
					t.Errorf("discard=ignore freed %d bytes", before-after)
				}
			})
		}
	}
}

// TestCopyRoundTrip: nbdcopy and qemu-img convert to and from the export.
func TestCopyRoundTrip(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "nbdcopy")
	dir := t.TempDir()
	src := filepath.Join(dir, "src.raw")
	makeSparseRaw(t, src, 16<<20, testutil.Seed(t))

	// Into the export: nbdcopy, then qemu-img convert.
	for i, tool := range []string{"nbdcopy", "qemu-img"} {
		dst := filepath.Join(dir, fmt.Sprintf("dst%d.qcow2", i))
		run(t, "qemu-img", "create", "-q", "-f", "qcow2", dst, "16M")
		uri := serveImage(t, dst, "qcow2", &Export{MultiConn: true}, false) // nbdcopy then uses 4 connections
		if tool == "nbdcopy" {
			run(t, "nbdcopy", src, uri)
		} else {
			run(t, "qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", src, uri)
		}
		run(t, "qemu-img", "compare", "-f", "raw", "-F", "raw", src, uri)
	}
	// Out of the export.
	uri := serveImage(t, src, "raw", &Export{}, true)
	out1, out2 := filepath.Join(dir, "out1.raw"), filepath.Join(dir, "out2.qcow2")
	run(t, "nbdcopy", uri, out1)
	run(t, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", uri, out2)
	run(t, "qemu-img", "compare", "-f", "raw", "-F", "raw", src, out1)
	run(t, "qemu-img", "compare", "-f", "raw", "-F", "qcow2", src, out2)
}

// TestFioVerify writes and verifies with fio's nbd engine, several jobs.
func TestFioVerify(t *testing.T) {
	testutil.NeedTool(t, "fio", "qemu-img")
	img := filepath.Join(t.TempDir(), "img.qcow2")
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", img, "64M")
	uri := serveImage(t, img, "qcow2", &Export{MultiConn: true}, false)
	out := run(t, "fio", "--name=v", "--ioengine=nbd", "--uri="+uri, "--rw=randwrite", "--bs=4k",
		"--size=16M", "--numjobs=4", "--offset_increment=16M", "--iodepth=16", "--verify=crc32c",
		"--do_verify=1", "--verify_fatal=1", "--verify_state_save=0", "--group_reporting")
	if strings.Contains(out, "verify:") && strings.Contains(out, "bad") {
		t.Fatalf("fio verify failed:\n%s", out)
	}
	if !strings.Contains(out, "Run status group") {
		t.Fatalf("fio did not finish:\n%s", out)
	}
}

package tool

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thinblk/thinblk/block"
	_ "github.com/thinblk/thinblk/format/qcow2"
	_ "github.com/thinblk/thinblk/format/raw"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/internal/testutil"
	"github.com/thinblk/thinblk/scsi"
)

// serveISCSI runs tool.ISCSI in the background on a random port and
// returns the URL of LUN 0.
func serveISCSI(t *testing.T, o ISCSIOptions) string {
	t.Helper()
	o.Portal = "127.0.0.1:0"
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ready := make(chan net.Addr, 1)
	o.Ready = func(a net.Addr) { ready <- a }
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- ISCSI(ctx, o) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("ISCSI: %v", err)
		}
	})
	select {
	case a := <-ready:
		return fmt.Sprintf("iscsi://%s/%s/0", a, DefaultISCSITarget)
	case err := <-errc:
		t.Fatalf("ISCSI: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("iscsi target not ready")
	}
	return ""
}

type mapEntry struct {
	Start, Length int64
	Data          bool
}

// dataRanges merges a qemu-img map JSON listing into the ranges with data.
func dataRanges(t *testing.T, js []byte) [][2]int64 {
	t.Helper()
	var entries []mapEntry
	if err := json.Unmarshal(js, &entries); err != nil {
		t.Fatalf("map output: %v\n%s", err, js)
	}
	var out [][2]int64
	for _, e := range entries {
		if !e.Data {
			continue
		}
		if n := len(out); n > 0 && out[n-1][1] == e.Start {
			out[n-1][1] = e.Start + e.Length
			continue
		}
		out = append(out, [2]int64{e.Start, e.Start + e.Length})
	}
	return out
}

func qemuIO(t *testing.T, url string, cmds ...string) {
	t.Helper()
	args := []string{"-f", "raw"}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out, err := exec.Command("qemu-io", append(args, url)...).CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("failed")) {
		t.Fatalf("qemu-io %v: %v\n%s", cmds, err, out)
	}
}

// TestISCSIMapMatchesLocal: qemu-img map through iscsi:// (GET LBA STATUS)
// shows the same data ranges as thinblk map of the image.
func TestISCSIMapMatchesLocal(t *testing.T) {
	testutil.NeedTool(t, "qemu-img")
	for _, format := range []string{"raw", "qcow2"} {
		t.Run(format, func(t *testing.T) {
			dir := t.TempDir()
			name := filepath.Join(dir, "disk."+format)
			if out, err := exec.Command("qemu-img", "create", "-q", "-f", format, name, "32M").CombinedOutput(); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			// Data at 1 MiB and 9 MiB+64k, zeroes elsewhere, a discarded hole.
			if out, err := exec.Command("qemu-io", "-f", format, "-c", "write -P 0x11 1M 2M", "-c", "write -P 0x22 9M 64k",
				"-c", "write -P 0x33 20M 4M", "-c", "discard 21M 1M", name).CombinedOutput(); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			var local bytes.Buffer
			if err := Map(&local, name, MapOptions{Format: format, Output: "json", MaxLength: -1}); err != nil {
				t.Fatal(err)
			}
			url := serveISCSI(t, ISCSIOptions{LUNs: []string{format + ":" + name}, Discard: "unmap", BlockSize: 4096, ReadOnly: true})
			remote, err := exec.Command("qemu-img", "map", "--output=json", "-f", "raw", url).Output()
			if err != nil {
				t.Fatalf("qemu-img map %s: %v", url, err)
			}
			l, r := dataRanges(t, local.Bytes()), dataRanges(t, remote)
			if fmt.Sprint(l) != fmt.Sprint(r) || len(l) == 0 {
				t.Fatalf("data ranges differ:\nthinblk map: %v\niscsi:       %v", l, r)
			}
		})
	}
}

// TestISCSIReclaim: qemu-io write -z -u and discard through iscsi:// free
// space in the image with --discard=unmap, and do not with the default
// --discard=ignore (where the data still reads as zeros after write -z
// and discard, because LBPRZ=1 is kept by writing zeros).
func TestISCSIReclaim(t *testing.T) {
	testutil.NeedTool(t, "qemu-io")
	for _, mode := range []string{"unmap", "ignore"} {
		t.Run(mode, func(t *testing.T) {
			name := filepath.Join(t.TempDir(), "disk.raw")
			if err := os.WriteFile(name, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(name, 16<<20); err != nil {
				t.Fatal(err)
			}
			// QEMU sends WRITE SAME with UNMAP for write -z -u only when
			// the LUN promises zeros (LBPRZ=1).
			url := serveISCSI(t, ISCSIOptions{LUNs: []string{"raw:" + name}, Discard: mode, LBPRZ: true})
			qemuIO(t, url, "write -P 0xab 0 8M")
			full := testutil.HostBytes(t, name)
			if full < 8<<20 {
				t.Fatalf("after writing 8 MiB only %d bytes are allocated", full)
			}
			qemuIO(t, url, "write -z -u 0 2M", "discard 2M 2M", "read -P 0 0 4M", "read -P 0xab 4M 4M")
			after := testutil.HostBytes(t, name)
			switch mode {
			case "unmap":
				if after > full-(4<<20)+(64<<10) {
					t.Fatalf("write -z -u and discard freed %d of 4 MiB", full-after)
				}
			case "ignore":
				if after < full-(2<<20) {
					t.Fatalf("discard=ignore freed %d bytes", full-after)
				}
			}
		})
	}
}

// TestISCSIOptionErrors: option combinations that cannot work are refused
// before anything is served.
func TestISCSIOptionErrors(t *testing.T) {
	name := filepath.Join(t.TempDir(), "disk.raw")
	os.WriteFile(name, make([]byte, 1<<20), 0o644)
	for _, o := range []ISCSIOptions{
		{},
		{LUNs: []string{name}, Discard: "sometimes"},
		{LUNs: []string{name}, CHAPUser: "u"},
		{LUNs: []string{name}, MutualUser: "m", MutualSecret: "s"},
		{LUNs: []string{name}, BlockSize: 1000},
		{LUNs: []string{filepath.Join(t.TempDir(), "missing")}},
		{LUNs: []string{name}, Target: "not-an-iqn"},
	} {
		if err := ISCSI(context.Background(), o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

// TestISCSIAnchoredQcow2: a qcow2 zero cluster that keeps its host cluster
// is reported as anchored by GET LBA STATUS, a discarded one as
// deallocated, data as mapped.
func TestISCSIAnchoredQcow2(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	name := filepath.Join(t.TempDir(), "disk.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", name, "4M").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if out, err := exec.Command("qemu-io", "-f", "qcow2", "-c", "write -P 1 0 1M", "-c", "write -z 0 64k",
		"-c", "discard 64k 64k", name).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	d, err := image.Open(name, image.Options{Format: "qcow2", Discard: "unmap"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	lu, err := scsi.New(d, scsi.Config{BlockSize: 4096, Anchor: true, Discard: block.DiscardUnmap})
	if err != nil {
		t.Fatal(err)
	}
	status := func() string {
		cdb := make([]byte, 16)
		cdb[0], cdb[1] = 0x9E, 0x12
		binary.BigEndian.PutUint32(cdb[10:], 4096)
		c := &scsi.Command{CDB: cdb}
		lu.Execute(c)
		if c.Status != 0 {
			t.Fatalf("GET LBA STATUS: status %#x sense % x", c.Status, c.Sense)
		}
		var got []string
		for p := c.DataIn[8:]; len(p) >= 16; p = p[16:] {
			got = append(got, fmt.Sprintf("%d+%d:%d", binary.BigEndian.Uint64(p), binary.BigEndian.Uint32(p[8:]), p[12]))
		}
		return fmt.Sprint(got)
	}
	// 4 KiB blocks: 16 anchored, 16 deallocated, 224 mapped, the rest deallocated.
	if got, want := status(), "[0+16:2 16+16:1 32+224:0 256+768:1]"; got != want {
		t.Fatalf("GET LBA STATUS runs %v, want %v", got, want)
	}
	// WRITE SAME(16) with UNMAP and ANCHOR on deallocated clusters (16-31)
	// and on mapped ones (32-47) anchors both.
	ws := make([]byte, 16)
	ws[0], ws[1] = 0x93, 0x08|0x10
	binary.BigEndian.PutUint64(ws[2:], 16)
	binary.BigEndian.PutUint32(ws[10:], 32)
	c := &scsi.Command{CDB: ws, DataOut: make([]byte, 4096)}
	lu.Execute(c)
	if c.Status != 0 {
		t.Fatalf("WRITE SAME ANCHOR: status %#x sense % x", c.Status, c.Sense)
	}
	if got, want := status(), "[0+48:2 48+208:0 256+768:1]"; got != want {
		t.Fatalf("after anchoring: runs %v, want %v", got, want)
	}
}

// TestISCSILBPRZOnBlockDevice: a loop device deallocates-and-zeroes through
// write-zeroes with unmap (fallocate PUNCH_HOLE on the device), so it may
// promise LBPRZ=1; an unmap through QEMU's initiator then reads zeros.
func TestISCSILBPRZOnBlockDevice(t *testing.T) {
	testutil.NeedRoot(t)
	testutil.NeedTool(t, "qemu-io")
	name := filepath.Join(t.TempDir(), "backing.raw")
	if err := os.WriteFile(name, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(name, 16<<20); err != nil {
		t.Fatal(err)
	}
	dev := testutil.LoopDevice(t, name)
	url := serveISCSI(t, ISCSIOptions{LUNs: []string{"raw:" + dev}, LBPRZ: true, Discard: "unmap"})
	out, err := exec.Command("qemu-io", "-f", "raw", "-c", "write -P 0x5a 0 2M", "-c", "write -z -u 0 1M",
		"-c", "discard 1M 1M", "-c", "read -P 0 0 2M", url).CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("Pattern verification failed")) {
		t.Fatalf("lbprz=1 on %s: unmapped blocks do not read zeros: %v\n%s", dev, err, out)
	}
}

// TestISCSIHeaderDigestWithQEMU: QEMU's libiscsi initiator negotiates
// HeaderDigest=CRC32C and moves data through it.
func TestISCSIHeaderDigestWithQEMU(t *testing.T) {
	testutil.NeedTool(t, "qemu-io")
	name := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(name, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(name, 4<<20); err != nil {
		t.Fatal(err)
	}
	log := &syncBuffer{}
	url := serveISCSI(t, ISCSIOptions{LUNs: []string{"raw:" + name}, Logger: slog.New(slog.NewTextHandler(log, nil))})
	portal := strings.Split(url, "/")[2] // iscsi://HOST:PORT/...
	opts := fmt.Sprintf("driver=iscsi,transport=tcp,portal=%s,target=%s,lun=0,header-digest=crc32c", portal, DefaultISCSITarget)
	out, err := exec.Command("qemu-io", "--image-opts", "-c", "write -P 0x5a 512 1M", "-c", "read -P 0x5a 512 1M", opts).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("read 1048576/1048576")) {
		t.Fatalf("qemu-io with header-digest=crc32c: %v\n%s", err, out)
	}
	if !strings.Contains(log.String(), "header_digest=true") {
		t.Fatalf("no session negotiated a header digest:\n%s", log.String())
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

package e2e

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/thinblk/thinblk/internal/testutil"
)

// variant is one guest boot: how the disk is served and attached.
type variant struct {
	name      string
	format    string // raw or qcow2
	transport string // nbd or iscsi
	device    string // virtio-blk or scsi-hd (over NBD), scsi-block (over iSCSI)
	discard   string // the server's --discard: unmap or ignore
	lbprz     bool   // iSCSI --lbprz
	anchor    bool   // iSCSI --anchor
}

// variants keep the whole suite within about 6 minutes on 2 cores: one
// boot each, writeMiB of random data.
var variants = []variant{
	{name: "nbd/virtio-blk/raw", format: "raw", transport: "nbd", device: "virtio-blk", discard: "unmap"},
	{name: "nbd/virtio-blk/qcow2", format: "qcow2", transport: "nbd", device: "virtio-blk", discard: "unmap"},
	{name: "nbd/scsi-hd/raw", format: "raw", transport: "nbd", device: "scsi-hd", discard: "unmap"},
	{name: "nbd/scsi-hd/qcow2", format: "qcow2", transport: "nbd", device: "scsi-hd", discard: "unmap"},
	{name: "iscsi/scsi-block/raw", format: "raw", transport: "iscsi", device: "scsi-block", discard: "unmap", lbprz: true, anchor: true},
	{name: "iscsi/scsi-block/qcow2", format: "qcow2", transport: "iscsi", device: "scsi-block", discard: "unmap", anchor: true},
	{name: "policy/nbd/virtio-blk/qcow2/ignore", format: "qcow2", transport: "nbd", device: "virtio-blk", discard: "ignore"},
	{name: "policy/iscsi/scsi-block/raw/ignore", format: "raw", transport: "iscsi", device: "scsi-block", discard: "ignore"},
}

const (
	diskSize     = 1 << 30
	writeMiB     = 192 // ~200 MB, as the issue asks
	guestTimeout = 3 * time.Minute
	targetIQN    = "iqn.2026-01.io.thinblk:e2e"
	// share is the fraction of the written bytes the host must see grow
	// and come back.
	share = 0.9
)

// TestGuestTrim boots a Linux guest per variant against a thinblk server
// and checks on the host that the image grows by what the guest writes and
// shrinks by it after the guest's fstrim (or keeps it, with
// --discard=ignore), plus the guest's own SCSI view over iSCSI.
func TestGuestTrim(t *testing.T) {
	env := needGuestTools(t)
	testutil.Thinblk(t) // build once, before the first boot's clock starts
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) { runVariant(t, env, v) })
	}
}

func runVariant(t *testing.T, env guestEnv, v variant) {
	image := filepath.Join(tempDir(t), "disk."+v.format)
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", v.format, image, strconv.Itoa(diskSize))

	cfg := vmConfig{
		Params:  map[string]string{"mib": strconv.Itoa(writeMiB), "disk": "sda"},
		Timeout: guestTimeout,
	}
	var srv *server
	switch v.transport {
	case "nbd":
		srv = startServer(t, func(port int) []string {
			return []string{"nbd", "-f", v.format, "-b", "127.0.0.1", "-p", strconv.Itoa(port),
				"-x", "disk0", "-t", "--discard=" + v.discard, image}
		})
		cfg.Drive = fmt.Sprintf("file=nbd://127.0.0.1:%d/disk0,format=raw,if=none,id=d0,discard=unmap", srv.port)
	case "iscsi":
		srv = startServer(t, func(port int) []string {
			args := []string{"iscsi", "--portal", fmt.Sprintf("127.0.0.1:%d", port), "--target", targetIQN,
				"--lun", v.format + ":" + image, "--discard=" + v.discard}
			if v.lbprz {
				args = append(args, "--lbprz")
			}
			if v.anchor {
				args = append(args, "--anchor")
			}
			return args
		})
		cfg.Drive = fmt.Sprintf("file=iscsi://127.0.0.1:%d/%s/0,format=raw,if=none,id=d0,discard=unmap", srv.port, targetIQN)
	}
	switch v.device {
	case "virtio-blk":
		cfg.Devices = []string{"virtio-blk-pci,drive=d0"}
		cfg.Params["disk"] = "vda"
	case "scsi-hd", "scsi-block":
		cfg.Devices = []string{"virtio-scsi-pci,id=scsi0", v.device + ",drive=d0,bus=scsi0.0"}
	}
	scsi := v.device == "scsi-block"
	if scsi {
		cfg.Params["scsi"] = "1"
	}
	if v.anchor {
		cfg.Params["anchor"] = "1"
	}

	g := bootGuest(t, env, cfg)
	written := int64(writeMiB) << 20
	want := int64(share * float64(written))

	g.waitStep("formatted")
	before := measure(t, image, v.format)
	t.Logf("formatted: %v (guest: discard_max_bytes %s, provisioning_mode %q)",
		before, g.kv["discard_max_bytes"], g.kv["provisioning_mode"])
	if scsi {
		checkLBPV(t, g, v)
	}
	g.resume()

	g.waitStep("written")
	afterWrite := measure(t, image, v.format)
	t.Logf("written %s: %v", mib(written), afterWrite)
	fileOff := g.value("lba") * g.value("lbs")
	if grew := afterWrite.du - before.du; grew < want {
		t.Errorf("du grew by %s, want >= %s (%.0f%% of the %s the guest wrote)", mib(grew), mib(want), share*100, mib(written))
	}
	if grew := afterWrite.mapData - before.mapData; grew < want {
		t.Errorf("thinblk map data grew by %s, want >= %s", mib(grew), mib(want))
	}
	if e := afterWrite.at(t, fileOff); !e.Data {
		t.Errorf("thinblk map at the file's first byte (offset %d) after the write: %+v, want data", fileOff, e)
	}
	if scsi {
		checkLBAStatus(t, g, "status_written", "lba", "mapped")
	}
	g.resume()

	g.waitStep("trimmed")
	afterTrim := measure(t, image, v.format)
	t.Logf("deleted and trimmed: %v", afterTrim)
	if c := g.output("fstrim"); c.rc != 0 {
		t.Errorf("guest fstrim exit %d: %s", c.rc, c.text)
	} else {
		t.Logf("guest: %s", strings.TrimSpace(c.text))
	}
	gaveBack := afterTrim.du - afterWrite.du
	mapBack := afterTrim.mapData - afterWrite.mapData
	gaveBack, mapBack = -gaveBack, -mapBack
	switch v.discard {
	case "unmap":
		if gaveBack < want {
			t.Errorf("du gave back %s after fstrim, want >= %s (%.0f%% of %s)", mib(gaveBack), mib(want), share*100, mib(written))
		}
		if mapBack < want {
			t.Errorf("thinblk map data gave back %s after fstrim, want >= %s", mib(mapBack), mib(want))
		}
		if e := afterTrim.at(t, fileOff); e.Data {
			t.Errorf("thinblk map at the deleted file's first byte (offset %d) after fstrim: %+v, want no data", fileOff, e)
		}
		if scsi {
			checkLBAStatus(t, g, "status_trimmed", "lba", "deallocated")
		}
	case "ignore":
		keep := written - want
		if gaveBack > keep {
			t.Errorf("--discard=ignore: du gave back %s after fstrim, want the host to keep the space (<= %s back)", mib(gaveBack), mib(keep))
		}
		if mapBack > keep {
			t.Errorf("--discard=ignore: thinblk map data gave back %s, want <= %s", mib(mapBack), mib(keep))
		}
		if e := afterTrim.at(t, fileOff); !e.Data {
			t.Errorf("--discard=ignore: thinblk map at the deleted file's first byte (offset %d): %+v, want data kept", fileOff, e)
		}
		if scsi {
			checkLBAStatus(t, g, "status_trimmed", "lba", "mapped")
		}
	}
	g.resume()

	if v.anchor {
		g.waitStep("anchored")
		checkAnchored(t, g, image, v.format)
		g.resume()
	}

	g.finish()
	srv.stop()
	if v.format == "qcow2" {
		out, errs, code := testutil.Run(t, "qemu-img", "check", "-f", "qcow2", image)
		if code != 0 {
			t.Errorf("qemu-img check after the guest run: exit %d\n%s%s", code, out, errs)
		} else {
			t.Logf("qemu-img check: clean")
		}
	}
}

// checkAnchored checks the two ranges the guest anchored with WRITE
// SAME(16) UNMAP ANCHOR: 1 MiB at "lba" that fstrim had deallocated, and
// 1 MiB at "lba2" that the guest had written (mapped) just before. Both must
// read back as anchored in the guest and as zero without data on the host.
func checkAnchored(t *testing.T, g *guest, image, format string) {
	t.Helper()
	a := measure(t, image, format)
	for _, r := range []struct{ anchor, status, lbaKey, was string }{
		{"anchor", "status_anchored", "lba", "deallocated"},
		{"anchor2", "status_anchored2", "lba2", "mapped"},
	} {
		if c := g.output(r.anchor); c.rc != 0 {
			t.Errorf("guest %s: sg_write_same --16 --unmap --anchor: exit %d: %s", r.anchor, c.rc, c.text)
			continue
		}
		if r.was == "mapped" {
			if err := lbaStatusIs(t, g, "status_mapped2", r.lbaKey, "mapped"); err != nil {
				t.Error(err)
			}
		}
		if err := lbaStatusIs(t, g, r.status, r.lbaKey, "anchored"); err != nil {
			t.Errorf("anchoring %s blocks: %v", r.was, err)
		}
		off := g.value(r.lbaKey) * g.value("lbs")
		if e := a.at(t, off); !e.Zero || e.Data {
			t.Errorf("anchoring %s blocks: thinblk map at offset %d: %+v, want zero and no data", r.was, off, e)
		}
	}
	t.Logf("after anchoring: %v", a)
}

// checkLBPV checks the guest's view of thinblk's Logical Block
// Provisioning VPD page against the server's flags.
func checkLBPV(t *testing.T, g *guest, v variant) {
	t.Helper()
	c := g.output("vpd")
	bits, err := parseLBPV(c.text)
	if err != nil {
		t.Error(err)
		return
	}
	want := map[string]int{"LBPU": 1, "LBPWS": 1, "LBPRZ": b2i(v.lbprz), "ANC_SUP": b2i(v.anchor)}
	for k, w := range want {
		if bits[k] != w {
			t.Errorf("guest sg_vpd -p lbpv: %s = %d, want %d\n%s", k, bits[k], w, c.text)
		}
	}
	t.Logf("guest sg_vpd -p lbpv: %v", bits)
}

// checkLBAStatus fails the test unless lbaStatusIs.
func checkLBAStatus(t *testing.T, g *guest, name, lbaKey, want string) {
	t.Helper()
	if err := lbaStatusIs(t, g, name, lbaKey, want); err != nil {
		t.Error(err)
	}
}

// lbaStatusIs checks a guest sg_get_lba_status output: the first
// descriptor starts at the guest's value lbaKey and has the wanted status
// ("mapped" accepts "mapped (or unknown)").
func lbaStatusIs(t *testing.T, g *guest, name, lbaKey, want string) error {
	t.Helper()
	c := g.output(name)
	if c.rc != 0 {
		return fmt.Errorf("guest %s: sg_get_lba_status exit %d:\n%s", name, c.rc, c.text)
	}
	s, err := parseLBAStatus(c.text)
	if err != nil {
		return fmt.Errorf("guest %s: %v", name, err)
	}
	lba := uint64(g.value(lbaKey))
	ok := s.status == want || want == "mapped" && s.mapped()
	if s.lba != lba || !ok {
		return fmt.Errorf("guest %s: first descriptor %+v, want LBA %d %s\n%s", name, s, lba, want, c.text)
	}
	t.Logf("guest %s: LBA %d, %d blocks %s", name, s.lba, s.blocks, s.status)
	return nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

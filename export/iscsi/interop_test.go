package iscsi

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/internal/testutil"
	"github.com/thinblk/thinblk/protocol/file"
	"github.com/thinblk/thinblk/protocol/mem"
	"github.com/thinblk/thinblk/scsi"
)

// requiredSuites must pass completely, with no test skipped.
var requiredSuites = []string{"Inquiry", "ReadCapacity16", "Unmap", "WriteSame10", "WriteSame16", "GetLBAStatus", "CompareAndWrite"}

// serveNode serves node as LUN 0 of testIQN on a random port and returns
// the iscsi:// URL of the LUN.
func serveNode(t testing.TB, node block.Driver, cfg scsi.Config) string {
	t.Helper()
	lu, err := scsi.New(node, cfg)
	if err != nil {
		t.Fatal(err)
	}
	luns := scsi.NewTarget()
	luns.Add(0, lu)
	srv := &Server{Targets: []*Target{{Name: testIQN, LUNs: luns}}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return fmt.Sprintf("iscsi://%s/%s/0", l.Addr(), testIQN)
}

func fileNode(t testing.TB, size int64) (*file.Node, string) {
	t.Helper()
	name := filepath.Join(t.TempDir(), "disk.raw")
	if err := file.Create(name, size, "off"); err != nil {
		t.Fatal(err)
	}
	n, err := file.Open(name, file.Options{Discard: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n, name
}

// cuResult is one iscsi-test-cu test outcome: "pass", "fail" or "skip".
type cuResults map[string]string

var cuTestRE = regexp.MustCompile(`(?s)Test: (\S+) \.\.\.(.*?)(passed|FAILED)`)

// runSuite runs one iscsi-test-cu suite in its own process (a bad command
// must not poison later suites) and parses each test's outcome. A test is
// skipped when its own output says [SKIPPED] (iscsi-test-cu counts those as
// passed).
func runSuite(t testing.TB, url, suite string) cuResults {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, _ := exec.CommandContext(ctx, "iscsi-test-cu", "--dataloss", "--test=SCSI."+suite+".*", url).CombinedOutput()
	res := cuResults{}
	for _, m := range cuTestRE.FindAllStringSubmatch(string(out), -1) {
		st := "pass"
		switch {
		case m[3] == "FAILED":
			st = "fail"
		case strings.Contains(m[2], "[SKIPPED]") || strings.Contains(m[2], "[SKIPPING]"):
			st = "skip"
		}
		res[suite+"."+m[1]] = st
	}
	if len(res) == 0 {
		t.Errorf("suite %s: no test ran; output:\n%s", suite, out)
	}
	if testing.Verbose() {
		for name, st := range res {
			if st != "pass" {
				t.Logf("%s: %s", name, st)
			}
		}
	}
	return res
}

func allSuites(t testing.TB) []string {
	out, err := exec.Command("iscsi-test-cu", "-l").Output()
	if err != nil {
		t.Fatal(err)
	}
	var suites []string
	for _, line := range strings.Fields(string(out)) {
		if s, ok := strings.CutPrefix(line, "SCSI."); ok && !strings.Contains(s, ".") {
			suites = append(suites, s)
		}
	}
	return suites
}

// TestLibiscsiRequiredSuites runs the thin-provisioning suites on two
// LUNs: 512-byte blocks over a file with 4 KiB physical blocks (LBPRZ=0),
// and 4096-byte blocks (LBPRZ=1, one logical block per physical block).
// Every test passes on both, except two known defects of libiscsi 1.19's
// tests, each of which passes on the other LUN:
//
//   - GetLBAStatus.UnmapSingle assumes one logical block per physical
//     block (it asks about LBA i+1 and expects a descriptor for i+LBPPB);
//   - WriteSame10/16.UnmapUntilEnd send WRITE SAME with UNMAP and a 0xFF
//     payload and expect zeros with LBPRZ=1, while SBC-4 (and DESIGN.md
//     rule 3) write a non-zero payload.
//
// A skip is allowed only where the test itself needs more than one logical
// block per physical block, and that test must pass on the other LUN.
func TestLibiscsiRequiredSuites(t *testing.T) {
	testutil.NeedTool(t, "iscsi-test-cu")
	f512, _ := fileNode(t, 64<<20)
	f4k, _ := fileNode(t, 64<<20)
	if f512.Limits().PhysicalBlock <= 512 {
		t.Logf("the file system reports %d-byte physical blocks: LBPPB>1 tests will skip", f512.Limits().PhysicalBlock)
	}
	luns := []struct {
		name    string
		url     string
		mayFail map[string]bool
	}{
		{"512", serveNode(t, f512, scsi.Config{Discard: block.DiscardUnmap, Anchor: true, Serial: "f512"}),
			map[string]bool{"GetLBAStatus.UnmapSingle": true}},
		{"4096-lbprz", serveNode(t, f4k, scsi.Config{BlockSize: 4096, Discard: block.DiscardUnmap, LBPRZ: true, Anchor: true, Serial: "f4k"}),
			map[string]bool{"WriteSame10.UnmapUntilEnd": true, "WriteSame16.UnmapUntilEnd": true}},
	}
	results := make([]cuResults, len(luns))
	var wg sync.WaitGroup
	for i, lun := range luns {
		wg.Add(1)
		go func() { // the two LUNs are independent: test them at once
			defer wg.Done()
			results[i] = cuResults{}
			for _, suite := range requiredSuites {
				for k, v := range runSuite(t, lun.url, suite) {
					results[i][k] = v
				}
			}
		}()
	}
	wg.Wait()
	for i, lun := range luns {
		other := results[1-i]
		for test, st := range results[i] {
			switch {
			case st == "pass":
			case st == "fail" && lun.mayFail[test] && other[test] == "pass":
				t.Logf("%s on the %s LUN: known libiscsi 1.19 defect (passes on the other LUN)", test, lun.name)
			case st == "skip" && other[test] == "pass":
			default:
				t.Errorf("%s on the %s LUN: %s (other LUN: %s)", test, lun.name, st, other[test])
			}
		}
	}
}

// tgt runs Debian's tgtd on a random portal and control port, serving
// image with thin provisioning, and returns the LUN's URL.
func startTgt(t testing.TB, image string) string {
	t.Helper()
	testutil.NeedTool(t, "tgtd", "tgtadm")
	testutil.NeedRoot(t)
	port := freePort(t)
	ctl := fmt.Sprint(2000 + rand.IntN(20000))
	cmd := exec.Command("tgtd", "-f", "-C", ctl, "--iscsi", "portal=127.0.0.1:"+fmt.Sprint(port))
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	adm := func(args ...string) error {
		out, err := exec.Command("tgtadm", append([]string{"-C", ctl, "--lld", "iscsi"}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("tgtadm %v: %v: %s", args, err, out)
		}
		return nil
	}
	t.Cleanup(func() {
		adm("--op", "delete", "--mode", "target", "--tid", "1", "--force")
		exec.Command("tgtadm", "-C", ctl, "--op", "delete", "--mode", "system").Run()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	const iqn = "iqn.2026-01.io.thinblk:tgt"
	var err error
	for i := 0; i < 50; i++ { // tgtd needs a moment to create its socket
		if err = adm("--op", "new", "--mode", "target", "--tid", "1", "-T", iqn); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "1", "-b", image},
		{"--op", "update", "--mode", "logicalunit", "--tid", "1", "--lun", "1", "--params", "thin_provisioning=1"},
		{"--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL"},
	} {
		if err := adm(args...); err != nil {
			t.Fatal(err)
		}
	}
	return fmt.Sprintf("iscsi://127.0.0.1:%d/%s/1", port, iqn)
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestLibiscsiAgainstTgt runs every SCSI suite against thinblk and, where
// tgtd can run, against tgt serving a file of the same size: every test
// tgt passes must pass here too.
func TestLibiscsiAgainstTgt(t *testing.T) {
	testutil.NeedTool(t, "iscsi-test-cu")
	fnode, _ := fileNode(t, 64<<20)
	ours := serveNode(t, fnode, scsi.Config{Discard: block.DiscardUnmap, Serial: "cmp"})
	suites := allSuites(t)
	runAll := func(url string) cuResults {
		r := cuResults{}
		for _, s := range suites {
			for k, v := range runSuite(t, url, s) {
				r[k] = v
			}
		}
		return r
	}
	// tgt runs at the same time on its own file, where it can run.
	tgtResults := make(chan cuResults, 1)
	withTgt := os.Geteuid() == 0 || testutil.InCI()
	if withTgt {
		_, tgtImage := fileNode(t, 64<<20)
		tgt := startTgt(t, tgtImage)
		go func() { tgtResults <- runAll(tgt) }()
	}
	mine := runAll(ours)
	count := func(r cuResults) (p, f, s int) {
		for _, v := range r {
			switch v {
			case "pass":
				p++
			case "fail":
				f++
			default:
				s++
			}
		}
		return
	}
	p, f, s := count(mine)
	t.Logf("thinblk: %d passed, %d failed, %d skipped of %d", p, f, s, len(mine))
	if !withTgt {
		t.Skip("tgtd needs root: comparison skipped")
	}
	theirs := <-tgtResults
	p, f, s = count(theirs)
	t.Logf("tgt:     %d passed, %d failed, %d skipped of %d", p, f, s, len(theirs))
	var worse []string
	for name, st := range theirs {
		if st == "pass" && mine[name] != "pass" {
			worse = append(worse, name+" ("+mine[name]+")")
		}
	}
	sort.Strings(worse)
	for _, w := range worse {
		t.Errorf("passes on tgt, not on thinblk: %s", w)
	}
}

// TestIscsiTools checks the advertised bits with libiscsi's own tools.
func TestIscsiTools(t *testing.T) {
	testutil.NeedTool(t, "iscsi-inq", "iscsi-readcapacity16")
	url := serveNode(t, mem.New(8<<20), scsi.Config{Discard: block.DiscardUnmap, LBPRZ: true, Anchor: true})
	out, err := exec.Command("iscsi-inq", "-e", "1", "-c", "178", url).CombinedOutput()
	if err != nil {
		t.Fatalf("iscsi-inq: %v\n%s", err, out)
	}
	for _, want := range []string{"lbpu:1", "lbpws:1", "lbpws10:1", "lbprz:1", "anc_sup:1", "dp:0", "provisioning type:2"} {
		if !strings.Contains(string(out), want+"\n") {
			t.Errorf("iscsi-inq 0xB2 lacks %q:\n%s", want, out)
		}
	}
	out, err = exec.Command("iscsi-readcapacity16", url).CombinedOutput()
	if err != nil {
		t.Fatalf("iscsi-readcapacity16: %v\n%s", err, out)
	}
	for _, want := range []string{"LBPME:1 LBPRZ:1", "LOGICAL BLOCK LENGTH IN BYTES:512", fmt.Sprintf("RETURNED LOGICAL BLOCK ADDRESS:%d", 8<<20/512-1)} {
		if !strings.Contains(string(out), want) {
			t.Errorf("iscsi-readcapacity16 lacks %q:\n%s", want, out)
		}
	}
	// Defaults: LBPRZ 0, no anchoring.
	url = serveNode(t, mem.New(8<<20), scsi.Config{})
	out, _ = exec.Command("iscsi-inq", "-e", "1", "-c", "178", url).CombinedOutput()
	if !strings.Contains(string(out), "lbprz:0\n") || !strings.Contains(string(out), "anc_sup:0\n") {
		t.Errorf("default LUN advertises LBPRZ or ANC_SUP:\n%s", out)
	}
}

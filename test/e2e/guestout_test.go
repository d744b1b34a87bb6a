package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/thinblk/thinblk/internal/testutil"
)

// Parsers for what the guest's sg3-utils print. They are checked against
// the real programs below (both accept --inhex, so no device is needed).

var lbpvField = regexp.MustCompile(`\((LBPU|LBPWS|LBPWS10|LBPRZ|ANC_SUP)\):\s*(\d+)`)

// parseLBPV returns the flag fields of `sg_vpd -p lbpv` output: LBPU,
// LBPWS, LBPWS10, LBPRZ and ANC_SUP. A field sg_vpd did not print is an
// error.
func parseLBPV(text string) (map[string]int, error) {
	bits := map[string]int{}
	for _, m := range lbpvField.FindAllStringSubmatch(text, -1) {
		bits[m[1]], _ = strconv.Atoi(m[2])
	}
	for _, k := range []string{"LBPU", "LBPWS", "LBPWS10", "LBPRZ", "ANC_SUP"} {
		if _, ok := bits[k]; !ok {
			return nil, fmt.Errorf("sg_vpd -p lbpv output has no %s field:\n%s", k, text)
		}
	}
	return bits, nil
}

// lbaStatus is the first descriptor of a GET LBA STATUS response.
type lbaStatus struct {
	lba    uint64
	blocks uint64
	// status is sg_get_lba_status's word for it: "mapped", "mapped (or
	// unknown)", "deallocated" or "anchored".
	status string
}

var lbaStatusLine = regexp.MustCompile(`(?m)^\[1\]\s+LBA:\s+0x([0-9a-fA-F]+)\s+blocks:\s+(\d+)\s+(\S.*?)\s*$`)

// parseLBAStatus returns the first descriptor of `sg_get_lba_status`
// output.
func parseLBAStatus(text string) (lbaStatus, error) {
	m := lbaStatusLine.FindStringSubmatch(text)
	if m == nil {
		return lbaStatus{}, fmt.Errorf("sg_get_lba_status output has no first descriptor:\n%s", text)
	}
	var s lbaStatus
	s.lba, _ = strconv.ParseUint(m[1], 16, 64)
	s.blocks, _ = strconv.ParseUint(m[2], 10, 64)
	s.status = m[3]
	return s, nil
}

// mapped reports whether the status says mapped (sg_get_lba_status prints
// status 0 as "mapped (or unknown)").
func (s lbaStatus) mapped() bool {
	return s.status == "mapped" || s.status == "mapped (or unknown)"
}

// TestGuestOutputParsers feeds made-up responses to the real sg_vpd and
// sg_get_lba_status (--inhex) and parses what they print.
func TestGuestOutputParsers(t *testing.T) {
	testutil.NeedTool(t, "sg_vpd", "sg_get_lba_status")
	dir := t.TempDir()
	hexFile := func(name, hex string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(hex), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// Logical Block Provisioning VPD page: byte 5 holds LBPU 0x80, LBPWS
	// 0x40, LBPWS10 0x20, LBPRZ 0x1c (3 bits), ANC_SUP 0x02, DP 0x01.
	for _, tc := range []struct {
		b5   byte
		want map[string]int
	}{
		{0xe0, map[string]int{"LBPU": 1, "LBPWS": 1, "LBPWS10": 1, "LBPRZ": 0, "ANC_SUP": 0}},
		{0xe6, map[string]int{"LBPU": 1, "LBPWS": 1, "LBPWS10": 1, "LBPRZ": 1, "ANC_SUP": 1}},
		{0x42, map[string]int{"LBPU": 0, "LBPWS": 1, "LBPWS10": 0, "LBPRZ": 0, "ANC_SUP": 1}},
		{0x84, map[string]int{"LBPU": 1, "LBPWS": 0, "LBPWS10": 0, "LBPRZ": 1, "ANC_SUP": 0}},
	} {
		f := hexFile("vpd.hex", fmt.Sprintf("00 b2 00 04 00 %02x 02 00\n", tc.b5))
		out := testutil.MustRun(t, "sg_vpd", "--inhex="+f, "-p", "lbpv")
		got, err := parseLBPV(out)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("byte 5 %#02x: %s = %d, want %d\n%s", tc.b5, k, got[k], v, out)
			}
		}
	}

	// GET LBA STATUS parameter data: length, reserved, then one 16-byte
	// descriptor (LBA, blocks, provisioning status).
	for ps, want := range []string{"mapped (or unknown)", "deallocated", "anchored", "mapped"} {
		f := hexFile("lba.hex", fmt.Sprintf("00 00 00 14 00 00 00 00\n00 00 00 00 00 01 10 00 00 00 08 00 %02x 00 00 00\n", ps))
		out := testutil.MustRun(t, "sg_get_lba_status", "--inhex="+f)
		got, err := parseLBAStatus(out)
		if err != nil {
			t.Fatal(err)
		}
		if got.lba != 0x11000 || got.blocks != 2048 || got.status != want {
			t.Errorf("status %d: got %+v, want lba 0x11000, 2048 blocks, %q\n%s", ps, got, want, out)
		}
		if got.mapped() != (ps == 0 || ps == 3) {
			t.Errorf("status %d: mapped() = %v", ps, got.mapped())
		}
	}
	if _, err := parseLBAStatus("sg_get_lba_status failed: Illegal request"); err == nil {
		t.Error("parseLBAStatus accepted output without a descriptor")
	}
}

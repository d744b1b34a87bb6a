package e2e

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/internal/testutil"
)

// allocation is what the host sees of an image at one step.
type allocation struct {
	// du is the image file's allocated bytes (du -B1: st_blocks*512).
	du int64
	// mapData is the sum of the guest-visible ranges `thinblk map` reports
	// with data:true (for qcow2: data clusters, not metadata).
	mapData int64
	// extents is the map itself, for looking up one guest offset.
	extents []mapExtent
}

func (a allocation) String() string {
	return fmt.Sprintf("du %s, map data %s", mib(a.du), mib(a.mapData))
}

// mapExtent is one entry of `thinblk map --output=json` (qemu-img's shape).
type mapExtent struct {
	Start   int64 `json:"start"`
	Length  int64 `json:"length"`
	Depth   int   `json:"depth"`
	Present bool  `json:"present"`
	Zero    bool  `json:"zero"`
	Data    bool  `json:"data"`
}

// at returns the map extent that holds guest offset off.
func (a allocation) at(t *testing.T, off int64) mapExtent {
	t.Helper()
	for _, e := range a.extents {
		if off >= e.Start && off < e.Start+e.Length {
			return e
		}
	}
	t.Fatalf("thinblk map has no extent at offset %d", off)
	return mapExtent{}
}

// measure takes an image's allocation with du and `thinblk map -U`, while
// the server still has it open (-U: the server holds the image's write lock,
// as qemu-img map needs -U next to a running qemu).
func measure(t *testing.T, image, format string) allocation {
	t.Helper()
	var a allocation
	out := testutil.MustRun(t, "du", "-B1", "--", image)
	f := strings.Fields(out)
	if len(f) == 0 {
		t.Fatalf("du -B1 %s printed nothing", image)
	}
	var err error
	if a.du, err = strconv.ParseInt(f[0], 10, 64); err != nil {
		t.Fatalf("du -B1 %s: %q: %v", image, out, err)
	}
	out = testutil.MustRun(t, testutil.Thinblk(t), "map", "-U", "-f", format, "--output=json", image)
	if err := json.Unmarshal([]byte(out), &a.extents); err != nil {
		t.Fatalf("thinblk map --output=json %s: %v\n%s", image, err, out)
	}
	for _, e := range a.extents {
		if e.Data {
			a.mapData += e.Length
		}
	}
	return a
}

// mib formats bytes as MiB with one decimal.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

package qcow2

import (
	"math/rand"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/internal/testutil"
)

// TestCheckFragmentationPerL2Table: qemu-img check counts a data cluster
// as fragmented when it does not follow the previous data cluster of the
// same L2 table; the first cluster of each table never is. thinblk carried
// the previous cluster over from one table to the next (check of a 4 KiB
// cluster image with snapshots said 53.70% fragmented, qemu-img 50.46%).
// Clusters written in random order over several 2 MiB tables, compared
// with qemu-img check.
func TestCheckFragmentationPerL2Table(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	r := rand.New(rand.NewSource(testutil.Seed(t)))
	name := filepath.Join(t.TempDir(), "frag.qcow2")
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=4k", name, "16M")
	// The last cluster of a table written right before the first of the
	// next: contiguous in the file, across a table boundary.
	args := []string{"-f", "qcow2", "-c", "write -P 1 2M 4k", "-c", "write -P 2 2044k 4k"}
	for range 40 {
		args = append(args, "-c", "write -P 3 "+strconv.FormatInt(r.Int63n(4096)*4096, 10)+" 4k")
	}
	run(t, "qemu-io", append(args, name)...)
	want := qemuCheck(t, name)
	d := openPath(t, name, true)
	defer d.Close()
	img, _ := block.As[*Image](d)
	res, err := img.Check(RepairNone)
	if err != nil {
		t.Fatal(err)
	}
	wantFrag := int64(0)
	if v, ok := want["fragmented-clusters"].(float64); ok {
		wantFrag = int64(v)
	}
	if res.FragmentedClusters != wantFrag || float64(res.AllocatedClusters) != want["allocated-clusters"].(float64) {
		t.Errorf("fragmented %d of %d allocated clusters, qemu-img check says %v of %v",
			res.FragmentedClusters, res.AllocatedClusters, want["fragmented-clusters"], want["allocated-clusters"])
	}
}

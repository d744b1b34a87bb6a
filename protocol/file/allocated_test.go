package file

import (
	"testing"

	"github.com/thinblk/thinblk/internal/testutil"
)

// TestAllocatedBytes: st_blocks*512 of the file, before and after a write.
func TestAllocatedBytes(t *testing.T) {
	n, name := newFile(t, 8<<20, Options{})
	for _, write := range []bool{false, true} {
		if write {
			if err := n.Pwrite(pattern(1<<20, 1), 4<<20, 0); err != nil {
				t.Fatal(err)
			}
		}
		got, err := n.AllocatedBytes()
		if err != nil {
			t.Fatal(err)
		}
		if want := testutil.HostBytes(t, name); got != want || (write && got < 1<<20) {
			t.Fatalf("AllocatedBytes %d, st_blocks say %d (after a write: %v)", got, want, write)
		}
	}
}

package tool

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestResizeToZeroRefused: qemu-img resize refuses a new size of 0 ("New
// image size must be positive"), with or without --shrink. thinblk resize
// --shrink IMG 0 (or -SIZE down to 0) emptied the disk and said "Image
// resized.".
func TestResizeToZeroRefused(t *testing.T) {
	img := filepath.Join(t.TempDir(), "z.raw")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, size := range []string{"0", "-1M", "-2M"} {
		err := Resize(io.Discard, img, size, ResizeOptions{Format: "raw", Shrink: true, AllowDataLoss: true})
		if err == nil || !strings.Contains(err.Error(), "must be positive") {
			t.Errorf("resize --shrink %s on a 1 MiB disk: %v, want \"must be positive\"", size, err)
		}
		fi, err := os.Stat(img)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() != 1<<20 {
			t.Fatalf("resize --shrink %s: size %d, want 1 MiB untouched", size, fi.Size())
		}
	}
	if err := Resize(io.Discard, img, "-512k", ResizeOptions{Format: "raw", Shrink: true, AllowDataLoss: true}); err != nil {
		t.Fatalf("resize --shrink -512k: %v", err)
	}
}

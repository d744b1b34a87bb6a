package testutil

import (
	"os"
	"syscall"
	"testing"
)

// HostBytes returns the bytes a file occupies on the host file system
// (st_blocks * 512), failing the test when it cannot stat it.
func HostBytes(t testing.TB, name string) int64 {
	t.Helper()
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Blocks * 512
}

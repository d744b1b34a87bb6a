package file

import (
	"errors"
	"os"
	"testing"
)

// TestCreateRefusesLockedImage: Create does not truncate a file another
// process holds open as an export (it refuses resize) or as a qcow2 user
// (it refuses write); the file keeps its size and bytes. Once released,
// Create works.
func TestCreateRefusesLockedImage(t *testing.T) {
	name := lockFixture(t)
	want, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	x := newForeign(t, name)
	for _, held := range [][]int64{{100, 101, 203}, {100, 201, 203}} {
		x.hold(held...)
		err := Create(name, 4096, PreallocOff)
		if !errors.Is(err, ErrLocked) {
			t.Fatalf("create over a file holding %v: %v, want a lock error", held, err)
		}
		got, rerr := os.ReadFile(name)
		if rerr != nil || string(got) != string(want) {
			t.Fatalf("create over a locked file changed it (%d bytes, was %d)", len(got), len(want))
		}
		x.release(held...)
	}
	if err := Create(name, 4096, PreallocOff); err != nil {
		t.Fatalf("create after the locks went: %v", err)
	}
	if fi, err := os.Stat(name); err != nil || fi.Size() != 4096 {
		t.Fatalf("created file: %v, %v", fi, err)
	}
}

// TestCreateRefusesFileOpenInProcess: a file this process has open (as a
// convert source) is not truncated by Create either.
func TestCreateRefusesFileOpenInProcess(t *testing.T) {
	name := lockFixture(t)
	n := mustOpen(t, name, Options{ReadOnly: true})
	if err := Create(name, 4096, PreallocOff); !errors.Is(err, ErrLocked) {
		t.Fatalf("create over a file open in this process: %v, want a lock error", err)
	}
	if fi, _ := os.Stat(name); fi.Size() != 1<<20 {
		t.Fatalf("the open file was truncated to %d bytes", fi.Size())
	}
	n.Close()
	if err := Create(name, 4096, PreallocOff); err != nil {
		t.Fatalf("create after close: %v", err)
	}
}

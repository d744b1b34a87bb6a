package qcow2

import (
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/internal/testutil"
)

// TestSnapshotCreateApplyDelete takes snapshots of a randomly written
// image with thinblk, keeps writing, applies and deletes them, and has
// QEMU judge every step: qemu-img check finds no corruption and no leak,
// and each snapshot read by qemu-img (convert -l) and the active image
// read what they held when they were taken.
func TestSnapshotCreateApplyDelete(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	seed := testutil.Seed(t)
	for ci, opts := range []string{"cluster_size=65536", "cluster_size=4096,refcount_bits=64",
		"extended_l2=on", "compat=0.10", "cluster_size=16384,refcount_bits=4"} {
		t.Run(opts, func(t *testing.T) {
			r := rand.New(rand.NewSource(seed + int64(ci)))
			dir := t.TempDir()
			name := filepath.Join(dir, "s.qcow2")
			const size = 4 << 20
			run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-o", opts, name, fmt.Sprint(size))
			want := make([]byte, size)
			snaps := map[string][]byte{}
			var order []string
			check := func(when string) {
				t.Helper()
				mustBeClean(t, name)
				mustEqual(t, qemuRaw(t, name), want, "active image "+when)
				for _, s := range order {
					out := filepath.Join(dir, "snap.raw")
					run(t, "qemu-img", "convert", "-l", "snapshot.name="+s, "-O", "raw", name, out)
					got, err := os.ReadFile(out)
					if err != nil {
						t.Fatal(err)
					}
					mustEqual(t, got, snaps[s], "snapshot "+s+" "+when)
				}
			}
			session := func(fn func(img *Image)) {
				t.Helper()
				d := openPath(t, name, false)
				img := d.(*Image)
				fn(img)
				if err := d.Close(); err != nil {
					t.Fatal(err)
				}
			}
			for round := range 3 {
				session(func(img *Image) {
					scribble(t, r, img, want)
					s := fmt.Sprintf("s%d", round)
					if _, err := img.CreateSnapshot(s, time.Now()); err != nil {
						t.Fatalf("create %s: %v", s, err)
					}
					snaps[s] = append([]byte(nil), want...)
					order = append(order, s)
					scribble(t, r, img, want)
				})
				check(fmt.Sprintf("after round %d", round))
			}
			// Revert to a random snapshot, then write on.
			s := order[r.Intn(len(order))]
			session(func(img *Image) {
				if err := img.ApplySnapshot(s); err != nil {
					t.Fatalf("apply %s: %v", s, err)
				}
				copy(want, snaps[s])
				mustEqual(t, readAll(t, img), want, "active image after applying "+s)
				scribble(t, r, img, want)
			})
			check("after applying " + s)
			// Delete them all, in random order.
			names := append([]string(nil), order...)
			for _, i := range r.Perm(len(names)) {
				s := names[i]
				session(func(img *Image) {
					if err := img.DeleteSnapshot(s); err != nil {
						t.Fatalf("delete %s: %v", s, err)
					}
				})
				for j, x := range order {
					if x == s {
						order = append(order[:j], order[j+1:]...)
						break
					}
				}
				check("after deleting " + s)
			}
			session(func(img *Image) {
				if err := img.DeleteSnapshot("s0"); !errors.Is(err, ErrSnapshotNotFound) {
					t.Fatalf("deleting a deleted snapshot: %v", err)
				}
			})
		})
	}
}

// scribble makes random writes, zeroings, discards and compressed writes,
// mirrored in want.
func scribble(t *testing.T, r *rand.Rand, img *Image, want []byte) {
	t.Helper()
	size := img.Size()
	for range 25 {
		off := r.Int63n(size)
		n := min(1+r.Int63n(300000), size-off)
		switch r.Intn(5) {
		case 0, 1:
			p := randBytes(r, int(n))
			if err := img.Pwrite(p, off, 0); err != nil {
				t.Fatal(err)
			}
			copy(want[off:], p)
		case 2:
			if err := img.WriteZeroes(off, n, block.MayUnmap); err != nil {
				t.Fatal(err)
			}
			clear(want[off : off+n])
		case 3:
			if err := img.Discard(off, n, 0); err != nil {
				t.Fatal(err)
			}
			copy(want[off:], readRange(t, img, off, n))
		case 4:
			cs := img.clusterSize
			off = off / cs * cs
			p := randBytes(r, int(cs))
			clear(p[r.Intn(len(p)):]) // compressible
			if err := img.WriteCompressed(p, off); err != nil {
				t.Fatal(err)
			}
			copy(want[off:], p)
		}
	}
}

// TestSnapshotRefusals: 1-bit refcounts cannot count a snapshot; 2-bit
// ones fill up after two snapshots and refuse the third without changing
// the image.
func TestSnapshotRefusals(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	dir := t.TempDir()
	for _, c := range []struct {
		bits string
		ok   int // snapshots that fit
	}{{"1", 0}, {"2", 2}} {
		name := filepath.Join(dir, "r"+c.bits+".qcow2")
		run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-o", "refcount_bits="+c.bits, name, "1M")
		run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 9 0 256k", name)
		d := openPath(t, name, false)
		img := d.(*Image)
		for i := 0; ; i++ {
			_, err := img.CreateSnapshot(fmt.Sprint("x", i), time.Now())
			if i < c.ok && err != nil {
				t.Fatalf("refcount_bits=%s: snapshot %d: %v", c.bits, i, err)
			}
			if i == c.ok {
				if err == nil {
					t.Fatalf("refcount_bits=%s: snapshot %d accepted, refcounts cannot count it", c.bits, i)
				}
				break
			}
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		mustBeClean(t, name)
		if n := len(run(t, "qemu-img", "snapshot", "-l", name)); (n == 0) != (c.ok == 0) {
			t.Fatalf("refcount_bits=%s: qemu-img snapshot -l printed %d bytes", c.bits, n)
		}
	}
}

// TestSnapshotApplyAfterGrowth: applying a snapshot taken before the image
// grew brings its disk size back, as qemu-img snapshot -a does: both
// programs' results check clean and read the same.
func TestSnapshotApplyAfterGrowth(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	dir := t.TempDir()
	ours, theirs := filepath.Join(dir, "ours.qcow2"), filepath.Join(dir, "theirs.qcow2")
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", ours, "1M")
	run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 1 0 1M", ours)
	run(t, "qemu-img", "snapshot", "-c", "small", ours)
	run(t, "qemu-img", "resize", "-q", ours, "4M")
	run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 2 0 4M", ours)
	b, err := os.ReadFile(ours)
	if err != nil || os.WriteFile(theirs, b, 0o644) != nil {
		t.Fatal(err)
	}
	d := openPath(t, ours, false)
	if err := d.(*Image).ApplySnapshot("small"); err != nil {
		t.Fatal(err)
	}
	if d.Size() != 1<<20 {
		t.Fatalf("size %d after applying a 1 MiB snapshot", d.Size())
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	run(t, "qemu-img", "snapshot", "-a", "small", theirs)
	mustBeClean(t, ours)
	mustEqual(t, qemuRaw(t, ours), qemuRaw(t, theirs), "image after apply")
}

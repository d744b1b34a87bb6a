package qcow2

import (
	"math/rand"
	"sync"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/internal/testutil"
	"github.com/thinblk/thinblk/protocol/mem"
)

// recorder is a growable mem node that logs every write and flush, so that
// a test can rebuild the node as a crash at any point would have left it.
type recorder struct {
	*mem.Node
	mu  sync.Mutex
	log []logEntry
}

type logEntry struct {
	flush bool
	off   int64
	data  []byte
}

func (r *recorder) Pwrite(p []byte, off int64, flags block.Flags) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, logEntry{off: off, data: append([]byte(nil), p...)})
	return r.Node.Pwrite(p, off, flags)
}

func (r *recorder) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, logEntry{flush: true})
	return r.Node.Flush()
}

// WriteZeroes is logged as a write of zero bytes.
func (r *recorder) WriteZeroes(off, n int64, flags block.Flags) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, logEntry{off: off, data: make([]byte, n)})
	return r.Node.WriteZeroes(off, n, flags)
}

// Discard is a hint; the recorder drops it, which a crash may also do.
func (r *recorder) Discard(off, n int64, flags block.Flags) error { return nil }

// replay builds a node from the log entries for which keep is true.
func replay(t testing.TB, log []logEntry, keep func(i int) bool) *mem.Node {
	n := mem.NewGrowable(0)
	for i, e := range log {
		if e.flush || !keep(i) {
			continue
		}
		if err := n.Pwrite(e.data, e.off, 0); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// TestCrashModel runs random writes, zeroes and discards with periodic
// flushes over a recording node, then rebuilds the file as a crash would
// leave it: every write up to a flush, plus a random subset of the writes
// after it. Each such image must open and check without corruption (leaks
// are allowed), and at every flush point the data must be what it was.
func TestCrashModel(t *testing.T) {
	seed := testutil.Seed(t)
	for ci, opts := range []map[string]string{
		{"cluster_size": "4096", "refcount_bits": "64", "l2-cache": "small"},
		{"cluster_size": "65536"},
		{"cluster_size": "32768", "extended_l2": "on"},
		{"cluster_size": "1024", "compat": "0.10"},
	} {
		r := rand.New(rand.NewSource(seed + int64(ci)))
		openOpts := map[string]string{}
		if opts["l2-cache"] == "small" {
			delete(opts, "l2-cache")
			openOpts = map[string]string{"l2-cache-size": "16384", "refcount-cache-size": "16384"}
		}
		rec := &recorder{Node: mem.NewGrowable(0)}
		size := int64(2 << 20)
		if err := CreateOn(rec, image.CreateOptions{Size: size, Options: opts}); err != nil {
			t.Fatal(err)
		}
		img, err := Open(rec, image.FormatOpen{Name: "crash", Options: openOpts})
		if err != nil {
			t.Fatal(err)
		}
		created := len(rec.log) // CreateOn ended with a flush
		model := make([]byte, size)
		var flushPoints []int // log index of each flush
		var snapshots [][]byte
		for op := range 120 {
			off := r.Int63n(size)
			n := min(1+r.Int63n(40000), size-off)
			switch r.Intn(5) {
			case 0, 1, 2:
				p := randBytes(r, int(n))
				if err := img.Pwrite(p, off, 0); err != nil {
					t.Fatal(err)
				}
				copy(model[off:], p)
			case 3:
				if err := img.WriteZeroes(off, n, block.Flags(r.Intn(2))*block.MayUnmap); err != nil {
					t.Fatal(err)
				}
				clear(model[off : off+n])
			case 4:
				// Discard of whole clusters only, so that the model knows.
				cs := img.clusterSize
				a, b := (off+cs-1)/cs*cs, (off+n)/cs*cs
				if a < b {
					if err := img.Discard(a, b-a, 0); err != nil {
						t.Fatal(err)
					}
					clear(model[a:b])
				}
			}
			if op%10 == 9 {
				if err := img.Flush(); err != nil {
					t.Fatal(err)
				}
				rec.mu.Lock()
				flushPoints = append(flushPoints, len(rec.log))
				rec.mu.Unlock()
				snapshots = append(snapshots, append([]byte(nil), model...))
			}
		}
		log := rec.log
		verify := func(node *mem.Node, want []byte, what string) {
			t.Helper()
			im, err := Open(node, image.FormatOpen{Name: what, ReadOnly: true})
			if err != nil {
				t.Fatalf("%v %s: open: %v", opts, what, err)
			}
			res, err := im.Check(RepairNone)
			if err != nil {
				t.Fatalf("%v %s: check: %v", opts, what, err)
			}
			if res.Corruptions > 0 {
				t.Fatalf("%v %s: %d corruptions: %v", opts, what, res.Corruptions, res.Messages)
			}
			if want != nil {
				mustEqual(t, readAll(t, im), want, what)
			} else {
				readAll(t, im) // must not fail
			}
		}
		for k, fp := range flushPoints {
			verify(replay(t, log, func(i int) bool { return i < fp }), snapshots[k], "flush point")
		}
		// A crash between two flushes of the file (the image's own, and the
		// ones it makes inside, e.g. when evicting tables): any subset of
		// the writes in between may have landed.
		prev := created
		for i := created; i < len(log); i++ {
			if !log[i].flush {
				continue
			}
			if i > prev+1 {
				for range 3 {
					verify(replay(t, log, func(j int) bool { return j < prev || (j < i && r.Intn(2) == 0) }), nil, "partial interval")
				}
			}
			prev = i
		}
	}
}

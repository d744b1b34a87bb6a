package copy

import (
	"context"
	"errors"
	"math/rand"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/filter/count"
	"github.com/thinblk/thinblk/filter/errinject"
)

// TestTargetIsZeroWritesNoZeros counts the target's requests with
// filter/count: onto a target that reads zeros, the copy sends no
// write-zeroes and no discards, and reads only the source's data.
func TestTargetIsZeroWritesNoZeros(t *testing.T) {
	s := seed(t)
	r := rand.New(rand.NewSource(s))
	const size = 2 << 20
	src := count.New(newFake(size, nil))
	want := make([]byte, size)
	fill(t, r, src, want)
	src.Reset()
	dst := count.New(newFake(size, nil))
	st, err := Run(context.Background(), src, dst, Options{TargetIsZero: true})
	if err != nil {
		t.Fatal(err)
	}
	if d := firstDiff(readAll(t, dst), want); d >= 0 {
		t.Fatalf("content differs at %d", d)
	}
	c := dst.Counts()
	if z := c.Of(count.WriteZeroes); z.Calls != 0 {
		t.Fatalf("%d write-zeroes on a target that reads zeros", z.Calls)
	}
	if d := c.Of(count.Discard); d.Calls != 0 {
		t.Fatalf("%d discards", d.Calls)
	}
	if w := c.Of(count.Pwrite); w.Bytes != st.Written {
		t.Fatalf("target saw %d bytes written, stats say %d", w.Bytes, st.Written)
	}
	// The source is read only where its status says data.
	var data int64
	for off := int64(0); off < size; {
		e, err := src.BlockStatus(off, size-off)
		if err != nil {
			t.Fatal(err)
		}
		if e.Status&block.Data != 0 && e.Status&block.Zero == 0 {
			data += e.Len
		}
		off += e.Len
	}
	if rd := src.Counts().Of(count.Pread); rd.Bytes != data {
		t.Fatalf("read %d source bytes; its data is %d bytes", rd.Bytes, data)
	}

	// Without the promise, the same copy zeroes instead of skipping.
	dst2 := count.New(newFake(size, nil))
	if _, err := Run(context.Background(), src, dst2, Options{}); err != nil {
		t.Fatal(err)
	}
	if z := dst2.Counts().Of(count.WriteZeroes); z.Calls == 0 {
		t.Fatal("no write-zeroes without TargetIsZero")
	}
}

// TestErrinjectReadFailure: a read failure injected by filter/errinject at
// a random offset stops the copy with an error naming that range.
func TestErrinjectReadFailure(t *testing.T) {
	s := seed(t)
	r := rand.New(rand.NewSource(s))
	const size = 16 << 20
	base := newFake(size, nil)
	p := make([]byte, size)
	r.Read(p)
	if err := base.Pwrite(p, 0, 0); err != nil {
		t.Fatal(err)
	}
	bad := r.Int63n(size)
	src := errinject.New(base, errinject.Rule{Ops: errinject.Pread, Off: bad, Len: 1})
	_, err := Run(context.Background(), src, newFake(size, nil), Options{SourceName: "src.img"})
	var op *block.OpError
	if !errors.As(err, &op) || op.Node != "src.img" || op.Off > bad || bad >= op.Off+op.Len {
		t.Fatalf("error %v: want a read error on src.img covering %d", err, bad)
	}
	if !errors.Is(err, errinject.ErrInjected) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("error %q: want the injected error on one line", err)
	}
}

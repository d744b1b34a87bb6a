package workload

import (
	"bytes"
	"crypto/sha256"
	"testing"

	"github.com/thinblk/thinblk/block"
)

func TestDeterministic(t *testing.T) {
	s := Spec{Size: 64 << 20, Data: 8 << 20, Zero: 2 << 20, Seed: 7}
	a, err := Content(s)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Content(s)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("same spec, different content")
	}
	s.Seed = 8
	c, err := Content(s)
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(a) == sha256.Sum256(c) {
		t.Fatal("different seeds, same content")
	}
}

func TestShape(t *testing.T) {
	s := Spec{Size: 256 << 20, Data: 32 << 20, Zero: 8 << 20, Seed: 3}
	plan, err := Plan(s)
	if err != nil {
		t.Fatal(err)
	}
	var data, zero int64
	sizes := map[int64]bool{}
	for _, e := range plan {
		if e.Off%4096 != 0 || e.Off+e.Len > s.Size || e.Len <= 0 {
			t.Fatalf("bad extent %+v", e)
		}
		if e.Zero {
			zero += e.Len
		} else {
			data += e.Len
		}
		sizes[e.Len] = true
	}
	if data != s.Data || zero != s.Zero {
		t.Fatalf("planned %d data and %d zero bytes, want %d and %d", data, zero, s.Data, s.Zero)
	}
	if len(sizes) < 4 {
		t.Fatalf("only %d extent sizes used", len(sizes))
	}
	img, err := Content(s)
	if err != nil {
		t.Fatal(err)
	}
	// Every data extent not later covered by zeros holds random bytes.
	last := plan[len(plan)-1]
	if !last.Zero || !block.IsZero(img[last.Off:last.Off+last.Len]) {
		t.Fatalf("last zero extent %+v does not read zeros", last)
	}
	first := plan[0]
	covered := false
	for _, e := range plan {
		if e.Zero && e.Off < first.Off+first.Len && first.Off < e.Off+e.Len {
			covered = true
		}
	}
	if !covered && block.IsZero(img[first.Off:first.Off+4096]) {
		t.Fatalf("data extent %+v reads zeros", first)
	}
}

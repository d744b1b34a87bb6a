package copy

import (
	"bytes"
	"strings"
	"testing"
)

func TestProgressLines(t *testing.T) {
	var b bytes.Buffer
	p := NewProgress(&b, false)
	for done := int64(0); done <= 1000; done += 5 {
		p.Update(done, 1000)
	}
	p.Done()
	out := b.String()
	if !strings.HasPrefix(out, "    (0.00/100%)\r") || !strings.HasSuffix(out, "    (100.00/100%)\r    (100.00/100%)\r\n") {
		t.Fatalf("output %q: want qemu-img's shape", out)
	}
	// One line per percent at most: 0, 1, ..., 100, and the repeat.
	if n := strings.Count(out, "\r"); n < 50 || n > 103 {
		t.Fatalf("%d updates for 200 calls", n)
	}

	b.Reset()
	p = NewProgress(&b, true)
	p.Update(1, 2)
	p.Done()
	if !strings.Contains(b.String(), "[#########################                         ]  50.00%") {
		t.Fatalf("bar %q", b.String())
	}
}

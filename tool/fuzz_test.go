package tool

import (
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/protocol/mem"
)

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "1k", "1.5M", "0x10k", "8E", "-1", "1e3", "0xe", "99999999999999999999T"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseSize(s)
		if err != nil {
			return
		}
		if v < 0 {
			t.Fatalf("ParseSize(%q) = %d < 0", s, v)
		}
		if back, err := ParseSize(strconv.FormatInt(v, 10)); err != nil || back != v {
			t.Fatalf("ParseSize(%q) = %d, but %d parses as %d, %v", s, v, v, back, err)
		}
	})
}

func FuzzKeyValues(f *testing.F) {
	for _, s := range []string{"a=1,b=2", "x=a,,b", "novalue", ",,,", "=v"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := image.ParseKeyValues(s)
		if err != nil {
			return
		}
		for k := range m {
			if k == "" || strings.Contains(k, "=") {
				t.Fatalf("ParseKeyValues(%q) gave key %q", s, k)
			}
		}
	})
}

// FuzzIOCommand runs arbitrary command lines against an in-memory image:
// a command may fail, but never panic or touch bytes outside the image.
func FuzzIOCommand(f *testing.F) {
	for _, s := range []string{
		"write -P 0xab 0 4k", "write -z -u 1k 3", "discard 0 1M", "read -P 0 -- 5 7", "read -v 0 33",
		"write -zu 0 0", "write -P", "read -P 999 0 1", "map", "length", "flush", "write -c 0 64k",
		"write -- -1 1", "read 1048575 2", "write -fq 0x10 0x10", "aio_flush extra",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] == "sigraise" || fields[0] == "sleep" {
			return
		}
		d := mem.New(1 << 20)
		s := &ioSession{d: d, w: io.Discard}
		_ = s.exec(line)
		if d.Size() != 1<<20 {
			t.Fatalf("%q changed the image size to %d", line, d.Size())
		}
	})
}

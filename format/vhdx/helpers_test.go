package vhdx

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/thinblk/thinblk/block"
	_ "github.com/thinblk/thinblk/format/raw"
	"github.com/thinblk/thinblk/internal/formattest"
)

// span is a run of guest bytes and whether it holds data.
type span struct {
	Off, Len int64
	Data     bool
}

// qemuMap returns qemu-img map's data/no-data runs, merged.
func qemuMap(t *testing.T, name, format string) []span {
	t.Helper()
	out := formattest.RunCmd(t, "qemu-img", "map", "--output=json", "-f", format, name)
	var ents []struct {
		Start, Length int64
		Data          bool
	}
	if err := json.Unmarshal(out, &ents); err != nil {
		t.Fatalf("qemu-img map: %v\n%s", err, out)
	}
	var s []span
	for _, e := range ents {
		s = appendSpan(s, span{e.Start, e.Length, e.Data})
	}
	return s
}

// ourMap returns our chain status's data/no-data runs, merged.
func ourMap(t *testing.T, d block.Driver) []span {
	t.Helper()
	var s []span
	for off := int64(0); off < d.Size(); {
		e, err := block.ChainStatus(d, off, d.Size()-off, nil)
		if err != nil {
			t.Fatalf("block status at %d: %v", off, err)
		}
		if e.Off != off || e.Len <= 0 {
			t.Fatalf("block status at %d answered %+v", off, e)
		}
		s = appendSpan(s, span{off, e.Len, e.Status&block.Data != 0})
		off += e.Len
	}
	return s
}

func appendSpan(s []span, x span) []span {
	if n := len(s); n > 0 && s[n-1].Data == x.Data && s[n-1].Off+s[n-1].Len == x.Off {
		s[n-1].Len += x.Len
		return s
	}
	return append(s, x)
}

func equalSpans(a, b []span) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// firstDiff returns the first differing offset of a and b, or -1.
func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// truncSpans cuts s at size (the footer of a fixed image as raw).
func truncSpans(s []span, size int64) []span {
	var out []span
	for _, x := range s {
		if x.Off >= size {
			break
		}
		x.Len = min(x.Len, size-x.Off)
		out = appendSpan(out, x)
	}
	return out
}

package blocktest

import (
	"bytes"
	"fmt"
)

// model is the reference content of the node under test. Every byte is
// either known (it must read as data[i]) or uncertain (it may read as
// data[i] or as zero: the state after a discard that does not promise
// zeros, or after a failed request). A read resolves uncertain bytes to what
// it saw, so later reads must agree with it.
//
// Concurrency: callers working on disjoint ranges may use one model in
// parallel (distinct bytes are distinct memory locations).
type model struct {
	data      []byte
	uncertain []byte // 1: may read as data[i] or zero; 0: must read as data[i]
}

func newModel(initial []byte, size int64) *model {
	m := &model{data: make([]byte, size), uncertain: make([]byte, size)}
	copy(m.data, initial)
	return m
}

func (m *model) write(p []byte, off int64) {
	copy(m.data[off:], p)
	clear(m.uncertain[off : off+int64(len(p))])
}

func (m *model) zero(off, n int64) {
	clear(m.data[off : off+n])
	clear(m.uncertain[off : off+n])
}

// maybeZero marks [off, off+n) as "old content or zero".
func (m *model) maybeZero(off, n int64) {
	for i := off; i < off+n; i++ {
		if m.data[i] != 0 {
			m.uncertain[i] = 1
		}
	}
}

// mismatch describes the first byte a read got wrong.
type mismatch struct {
	off       int64
	got, want byte
	uncertain bool
	wrong     int64 // how many bytes of the read are wrong
}

func (e *mismatch) Error() string {
	if e.uncertain {
		return fmt.Sprintf("byte at offset %d (0x%x) reads 0x%02x, want 0x%02x or 0x00 (after a discard); %d bytes of the read are wrong",
			e.off, e.off, e.got, e.want, e.wrong)
	}
	return fmt.Sprintf("byte at offset %d (0x%x) reads 0x%02x, want 0x%02x; %d bytes of the read are wrong",
		e.off, e.off, e.got, e.want, e.wrong)
}

// verify checks what a read of [off, off+len(got)) returned and resolves
// uncertain bytes. It returns a *mismatch for the first wrong byte.
func (m *model) verify(got []byte, off int64) error {
	end := off + int64(len(got))
	if bytes.Equal(got, m.data[off:end]) {
		clear(m.uncertain[off:end]) // whatever was uncertain read as its old value
		return nil
	}
	var first *mismatch
	for i, b := range got {
		j := off + int64(i)
		want := m.data[j]
		ok := b == want
		if m.uncertain[j] != 0 {
			if ok || b == 0 {
				m.data[j] = b
				m.uncertain[j] = 0
				continue
			}
		}
		if ok {
			continue
		}
		if first == nil {
			first = &mismatch{off: j, got: b, want: want, uncertain: m.uncertain[j] != 0}
		}
		first.wrong++
	}
	if first != nil {
		return first
	}
	return nil
}

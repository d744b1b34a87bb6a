package image

import (
	"sync"

	"github.com/thinblk/thinblk/block"
)

// probedRaw guards an image that was opened as raw because probing found no
// known format (DESIGN.md rule 7): a write that would make the first bytes
// look like another format is refused with ErrInvalid, so a guest cannot
// plant a qcow2 header that the host would follow to another file the next
// time it probes. Opening with an explicit -f raw removes the guard.
type probedRaw struct {
	wrapper
	mu sync.Mutex // serializes writes that touch the probed head
}

func (w *probedRaw) Pwrite(p []byte, off int64, flags block.Flags) error {
	if off >= ProbeSize || len(p) == 0 || off < 0 {
		return w.Driver.Pwrite(p, off, flags)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	head, err := readHead(w.Driver)
	if err != nil {
		return err
	}
	if off >= int64(len(head)) {
		return w.Driver.Pwrite(p, off, flags) // out of range: the node says so
	}
	copy(head[off:], p)
	if f := Probe(head); f != "raw" {
		return &block.OpError{Op: "pwrite", Node: "probed raw image", Off: off, Len: int64(len(p)),
			Err: reasonf(block.ErrInvalid, "write would make the image's first bytes look like a %s image; open it with an explicit format (-f raw) to allow this", f)}
	}
	return w.Driver.Pwrite(p, off, flags)
}

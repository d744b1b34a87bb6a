package qcow2

import (
	"fmt"

	"github.com/thinblk/thinblk/block"
)

// SetBackingFile records name (and format, "" for none) as the image's
// backing file in the header, as `rebase` needs: the header, its
// extensions and the name are rewritten in place in the first cluster and
// the file is flushed, so the change is durable when this returns. An
// empty name removes the backing file (and its format). It fails with
// ErrInvalid, leaving the image unchanged, when the name is longer than
// 1023 bytes or the header would no longer fit in the first cluster.
//
// Only the header changes: the backing node opened with the image stays
// in use until the image is reopened, so callers (rebase) first make the
// image read the same over the new backing file, then call this.
func (img *Image) SetBackingFile(name, format string) error {
	if err := img.beginGuestChange(); err != nil {
		return img.opError("set-backing-file", 0, 0, err)
	}
	if name == "" && format != "" {
		return img.opError("set-backing-file", 0, 0, fmt.Errorf("%w: qcow2: a backing format without a backing file", block.ErrInvalid))
	}
	img.mu.Lock()
	defer img.mu.Unlock()
	if img.closed {
		return block.ErrClosed
	}
	h := *img.hdr
	h.BackingFile, h.BackingFormat = name, format
	if _, err := h.encode(); err != nil {
		return img.opError("set-backing-file", 0, 0, err)
	}
	old := img.hdr
	img.hdr = &h
	if err := img.writeHeaderLocked(); err != nil {
		img.hdr = old
		return img.opError("set-backing-file", 0, 0, err)
	}
	return nil
}

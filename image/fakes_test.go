package image

import (
	"bytes"
	"fmt"
	"os"
	"sync"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/protocol/mem"
)

// Test formats, registered once for this package's tests (format/raw cannot
// be imported here: it imports package image).
//
//   - "raw": the storage node itself, reporting format "raw".
//   - "tfmt": a toy overlay format: "TFMT" magic, then a NUL-terminated
//     backing file name and a NUL-terminated backing format, padded to
//     tfmtHeader bytes; the guest data follows. Ranges whose stored bytes are
//     all 0xee are "unallocated" and read from the backing node.

const tfmtHeader = 512

var registerOnce sync.Once

func registerTestFormats() {
	registerOnce.Do(func() {
		Register(Format{
			Name: "raw",
			Open: func(file block.Driver, o FormatOpen) (block.Driver, error) {
				return &fakeRaw{file}, nil
			},
			Create: func(name string, o CreateOptions) error {
				for k := range o.Options {
					return fmt.Errorf("%w: unknown option %q", block.ErrInvalid, k)
				}
				return os.WriteFile(name, make([]byte, o.Size), 0o644)
			},
		})
		Register(Format{
			Name: "tfmt",
			Probe: func(head []byte) int {
				if bytes.HasPrefix(head, []byte("TFMT")) {
					return 100
				}
				return 0
			},
			Open:   openTfmt,
			Create: createTfmt,
		})
		RegisterProtocol("fake", func(url string, readOnly bool) (block.Driver, error) {
			m := mem.New(1 << 20)
			return m, nil
		})
	})
}

type fakeRaw struct{ block.Driver }

func (r *fakeRaw) Info() (block.Info, error) {
	in, err := r.Driver.Info()
	in.Format = "raw"
	return in, err
}

type tfmt struct {
	block.Driver // the storage node; offsets shifted by tfmtHeader
	backing      block.Driver
	name, format string
}

func tfmtHead(backing, format string) []byte {
	h := make([]byte, tfmtHeader)
	copy(h, "TFMT"+backing+"\x00"+format+"\x00")
	return h
}

func openTfmt(file block.Driver, o FormatOpen) (block.Driver, error) {
	h := make([]byte, tfmtHeader)
	if err := file.Pread(h, 0); err != nil {
		return nil, err
	}
	parts := bytes.SplitN(h[4:], []byte{0}, 3)
	t := &tfmt{Driver: file, name: string(parts[0]), format: string(parts[1])}
	if t.name != "" && !o.NoBacking {
		b, err := o.OpenBacking(t.name, t.format)
		if err != nil {
			return nil, fmt.Errorf("opening backing file %s: %w", t.name, err)
		}
		t.backing = b
	}
	return t, nil
}

func createTfmt(name string, o CreateOptions) error {
	size := o.Size
	if o.Backing != "" {
		b, err := o.OpenBacking(o.Backing, o.BackingFormat)
		if err != nil {
			return err
		}
		if size == 0 {
			size = b.Size()
		}
		b.Close()
	}
	data := bytes.Repeat([]byte{0xee}, int(size))
	return os.WriteFile(name, append(tfmtHead(o.Backing, o.BackingFormat), data...), 0o644)
}

func (t *tfmt) Size() int64                   { return t.Driver.Size() - tfmtHeader }
func (t *tfmt) Backing() block.Driver         { return t.backing }
func (t *tfmt) BackingFile() (string, string) { return t.name, t.format }
func (t *tfmt) Pread(p []byte, off int64) error {
	if err := t.Driver.Pread(p, off+tfmtHeader); err != nil {
		return err
	}
	if t.backing != nil && len(p) > 0 && bytes.Count(p, []byte{0xee}) == len(p) {
		return t.backing.Pread(p, off)
	}
	return nil
}
func (t *tfmt) Pwrite(p []byte, off int64, f block.Flags) error {
	return t.Driver.Pwrite(p, off+tfmtHeader, f)
}
func (t *tfmt) Close() error {
	if t.backing != nil {
		t.backing.Close()
	}
	return t.Driver.Close()
}
func (t *tfmt) Info() (block.Info, error) {
	return block.Info{Format: "tfmt", VirtualSize: t.Size(), AllocatedBytes: -1, Watermark: -1}, nil
}

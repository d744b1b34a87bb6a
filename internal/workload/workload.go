package workload

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
)

// Spec describes an image.
type Spec struct {
	// Size is the virtual size in bytes.
	Size int64
	// Data is how many bytes of random data extents to write, and Zero how
	// many bytes of zero extents (written after the data).
	Data, Zero int64
	// Seed selects the layout and the bytes.
	Seed uint64
}

// Extent is one write of the workload: Len bytes at Off, zeros when Zero.
type Extent struct {
	Off, Len int64
	Zero     bool
}

// extentSizes are the lengths extents are drawn from.
var extentSizes = []int64{4 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20}

// Plan returns the writes of s in order. It is pure: the same Spec gives
// the same plan.
func Plan(s Spec) ([]Extent, error) {
	if s.Size < 4<<20 || s.Data < 0 || s.Zero < 0 {
		return nil, fmt.Errorf("workload: size %d too small (min 4 MiB) or negative amounts", s.Size)
	}
	r := rand.New(rand.NewPCG(s.Seed, 0x7468696e626c6b))
	var out []Extent
	fill := func(total int64, zero bool) {
		for done := int64(0); done < total; {
			n := min(extentSizes[r.IntN(len(extentSizes))], total-done)
			off := r.Int64N((s.Size-n)/4096) * 4096
			out = append(out, Extent{Off: off, Len: n, Zero: zero})
			done += n
		}
	}
	fill(s.Data, false)
	fill(s.Zero, true)
	return out, nil
}

// Write writes the image of s to w (a file or any io.WriterAt), which must
// read as zeros where nothing is written (a new sparse file).
func Write(w io.WriterAt, s Spec) error {
	plan, err := Plan(s)
	if err != nil {
		return err
	}
	data := rand.New(rand.NewChaCha8(seedBytes(s.Seed)))
	buf := make([]byte, 4<<20)
	zeros := make([]byte, 4<<20)
	for _, e := range plan {
		p := zeros[:e.Len]
		if !e.Zero {
			p = buf[:e.Len]
			fillRandom(data, p)
		}
		if _, err := w.WriteAt(p, e.Off); err != nil {
			return fmt.Errorf("workload: write %d+%d: %w", e.Off, e.Len, err)
		}
	}
	return nil
}

// Create makes a sparse file at path with the image of s, and syncs it.
func Create(path string, s Spec) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if err := f.Truncate(s.Size); err != nil {
		f.Close()
		return err
	}
	if err := Write(f, s); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Content returns the bytes the image of s reads (for small images in
// tests).
func Content(s Spec) ([]byte, error) {
	b := &memWriter{p: make([]byte, s.Size)}
	if err := Write(b, s); err != nil {
		return nil, err
	}
	return b.p, nil
}

type memWriter struct{ p []byte }

func (m *memWriter) WriteAt(p []byte, off int64) (int, error) {
	return copy(m.p[off:], p), nil
}

func seedBytes(seed uint64) [32]byte {
	var b [32]byte
	for i := range 8 {
		b[i] = byte(seed >> (8 * i))
	}
	copy(b[8:], "thinblk workload data stream")
	return b
}

// fillRandom fills p from r, 8 bytes at a time; the data never contains a
// whole zero 4 KiB block, in practice.
func fillRandom(r *rand.Rand, p []byte) {
	i := 0
	for ; i+8 <= len(p); i += 8 {
		v := r.Uint64()
		p[i], p[i+1], p[i+2], p[i+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
		p[i+4], p[i+5], p[i+6], p[i+7] = byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56)
	}
	for ; i < len(p); i++ {
		p[i] = byte(r.Uint64())
	}
}

package mem

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/internal/testutil"
)

// checkExtents walks BlockStatus over the whole node, checks that extents
// tile it and that every run agrees with the model: Zero runs read zeros,
// and the state matches the model's per-chunk state.
func checkExtents(t *testing.T, m *Node, model []byte, state map[int64]block.Status) {
	t.Helper()
	size := int64(len(model))
	for off := int64(0); off < size; {
		e, err := m.BlockStatus(off, size-off)
		if err != nil {
			t.Fatalf("BlockStatus(%d): %v", off, err)
		}
		if e.Off != off || e.Len <= 0 || e.End() > size {
			t.Fatalf("BlockStatus(%d, %d) = %+v", off, size-off, e)
		}
		for pos := e.Off; pos < e.End(); pos = (pos/ChunkSize + 1) * ChunkSize {
			want, ok := state[pos/ChunkSize]
			if !ok {
				want = block.Zero
			}
			if e.Status != want {
				t.Fatalf("extent %+v at %d: status %v, model %v", e, pos, e.Status, want)
			}
		}
		if e.Status&block.Zero != 0 && !block.IsZero(model[e.Off:e.End()]) {
			t.Fatalf("extent %+v claims zero but model has data", e)
		}
		off = e.End()
	}
}

func TestRandomAgainstModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(uint64(testutil.Seed(t)), 1))
	const size = 20*ChunkSize + 1234
	m := New(size)
	model := make([]byte, size)
	// pool holds random non-zero bytes; writes copy slices of it (filling
	// each buffer byte by byte is slow under the race detector).
	pool := make([]byte, 5*ChunkSize)
	for j := range pool {
		pool[j] = byte(rng.IntN(255) + 1)
	}
	// state is the expected status of each chunk, by the rules in doc.go.
	state := map[int64]block.Status{}
	randRange := func() (int64, int64) {
		off := rng.Int64N(size)
		var n int64
		switch rng.IntN(3) {
		case 0:
			n = rng.Int64N(512) + 1
		case 1:
			n = rng.Int64N(3*ChunkSize) + 1
		default:
			off = rng.Int64N(size/ChunkSize) * ChunkSize
			n = ChunkSize * (rng.Int64N(4) + 1)
		}
		return off, min(n, size-off)
	}
	zero := func(off, n int64, unmap bool) {
		clear(model[off : off+n])
		for pos := off; pos < off+n; {
			idx := pos / ChunkSize
			chunkEnd := min((idx+1)*ChunkSize, size)
			c := min(off+n, chunkEnd) - pos
			_, present := state[idx]
			whole := pos == idx*ChunkSize && pos+c == chunkEnd
			switch {
			case whole && unmap:
				delete(state, idx)
			case whole:
				state[idx] = block.Zero | block.Allocated
			case !present && !unmap:
				state[idx] = block.Zero | block.Allocated
			}
			pos += c
		}
	}
	for i := 0; i < 3000; i++ {
		off, n := randRange()
		switch rng.IntN(5) {
		case 0, 1:
			start := rng.Int64N(int64(len(pool)) - n + 1)
			p := pool[start : start+n]
			if err := m.Pwrite(p, off, 0); err != nil {
				t.Fatal(err)
			}
			copy(model[off:], p)
			for idx := off / ChunkSize; idx*ChunkSize < off+n; idx++ {
				state[idx] = block.Data | block.Allocated
			}
		case 2:
			if err := m.Discard(off, n, 0); err != nil {
				t.Fatal(err)
			}
			zero(off, n, true)
		case 3:
			flags := block.NoFallback
			if rng.IntN(2) == 0 {
				flags |= block.MayUnmap
			}
			if err := m.WriteZeroes(off, n, flags); err != nil {
				t.Fatal(err)
			}
			zero(off, n, flags.Has(block.MayUnmap))
		case 4:
			p := make([]byte, n)
			if err := m.Pread(p, off); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(p, model[off:off+n]) {
				t.Fatalf("op %d: read %d+%d differs from model", i, off, n)
			}
		}
		if i%100 == 0 {
			checkExtents(t, m, model, state)
		}
	}
	checkExtents(t, m, model, state)
	info, err := m.Info()
	if err != nil {
		t.Fatal(err)
	}
	if info.AllocatedBytes != int64(len(state))*ChunkSize {
		t.Fatalf("AllocatedBytes %d, model %d chunks", info.AllocatedBytes, len(state))
	}
}

func TestRanges(t *testing.T) {
	m := New(1000)
	buf := make([]byte, 10)
	for _, off := range []int64{-1, 991, 1000, 1 << 62} {
		if err := m.Pread(buf, off); !errors.Is(err, block.ErrOutOfRange) {
			t.Errorf("Pread at %d: %v, want ErrOutOfRange", off, err)
		}
		if err := m.Pwrite(buf, off, 0); !errors.Is(err, block.ErrOutOfRange) {
			t.Errorf("Pwrite at %d: %v, want ErrOutOfRange", off, err)
		}
	}
	if err := m.Discard(0, 1001, 0); !errors.Is(err, block.ErrOutOfRange) {
		t.Errorf("Discard past end: %v", err)
	}
	if _, err := m.BlockStatus(1000, 1); !errors.Is(err, block.ErrOutOfRange) {
		t.Errorf("BlockStatus at end: %v", err)
	}
	if _, err := m.BlockStatus(0, 0); !errors.Is(err, block.ErrInvalid) {
		t.Errorf("BlockStatus of 0 bytes: %v", err)
	}
	var oe *block.OpError
	if err := m.Pread(buf, 995); !errors.As(err, &oe) || oe.Op != "pread" || oe.Off != 995 {
		t.Errorf("error %v is not an OpError for pread at 995", err)
	}
	if err := m.Pread(buf, 990); err != nil {
		t.Errorf("Pread of the last bytes: %v", err)
	}
}

func TestGrowableAndTruncate(t *testing.T) {
	m := NewGrowable(100)
	p := bytes.Repeat([]byte{7}, 50)
	if err := m.Pwrite(p, 3*ChunkSize, 0); err != nil {
		t.Fatal(err)
	}
	if got := m.Size(); got != 3*ChunkSize+50 {
		t.Fatalf("size after growing write %d", got)
	}
	if err := m.Pwrite(p, -1, 0); !errors.Is(err, block.ErrOutOfRange) {
		t.Fatalf("negative offset on growable: %v", err)
	}
	if err := m.Pread(make([]byte, 1), 3*ChunkSize+50); !errors.Is(err, block.ErrOutOfRange) {
		t.Fatalf("read past grown end: %v", err)
	}
	// Shrink into the written bytes, grow again: the cut bytes read zero.
	if err := m.Truncate(3*ChunkSize + 10); err != nil {
		t.Fatal(err)
	}
	if err := m.Truncate(4 * ChunkSize); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 50)
	if err := m.Pread(got, 3*ChunkSize); err != nil {
		t.Fatal(err)
	}
	want := append(bytes.Repeat([]byte{7}, 10), make([]byte, 40)...)
	if !bytes.Equal(got, want) {
		t.Fatalf("after shrink+grow read %v", got)
	}
	if err := m.Truncate(ChunkSize); err != nil {
		t.Fatal(err)
	}
	info, _ := m.Info()
	if info.AllocatedBytes != 0 || info.Watermark != 0 {
		t.Fatalf("after truncating below data: %+v", info)
	}
	// A fixed-size node refuses writes past the end.
	if err := New(10).Pwrite(p, 0, 0); !errors.Is(err, block.ErrOutOfRange) {
		t.Fatalf("write past end of fixed node: %v", err)
	}
}

func TestAnchoredAndInfo(t *testing.T) {
	m := New(4 * ChunkSize)
	if err := m.Pwrite([]byte{1}, 2*ChunkSize+5, 0); err != nil {
		t.Fatal(err)
	}
	if err := m.WriteZeroes(0, ChunkSize+1, 0); err != nil {
		t.Fatal(err)
	}
	wantRuns := []block.Extent{
		{Off: 0, Len: 2 * ChunkSize, Status: block.Zero | block.Allocated},
		{Off: 2 * ChunkSize, Len: ChunkSize, Status: block.Data | block.Allocated},
		{Off: 3 * ChunkSize, Len: ChunkSize, Status: block.Zero},
	}
	for _, w := range wantRuns {
		e, err := m.BlockStatus(w.Off, m.Size()-w.Off)
		if err != nil {
			t.Fatal(err)
		}
		if e.Off != w.Off || e.Len != w.Len || e.Status != w.Status || e.HostOffset != -1 {
			t.Errorf("BlockStatus(%d) = %+v, want %+v", w.Off, e, w)
		}
	}
	info, _ := m.Info()
	if info.AllocatedBytes != 3*ChunkSize || info.Watermark != 3*ChunkSize || info.Format != "mem" {
		t.Errorf("info %+v", info)
	}
	// Unmapping write-zeroes frees the anchored chunks.
	if err := m.WriteZeroes(0, 2*ChunkSize, block.MayUnmap); err != nil {
		t.Fatal(err)
	}
	if e, _ := m.BlockStatus(0, ChunkSize); e.Status != block.Zero {
		t.Errorf("after unmap %+v", e)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Pread(make([]byte, 1), 0); !errors.Is(err, block.ErrClosed) {
		t.Errorf("read after close: %v", err)
	}
}

func TestConcurrentDisjointWrites(t *testing.T) {
	const workers = 8
	m := New(workers * 4 * ChunkSize)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			base := int64(w) * 4 * ChunkSize
			p := bytes.Repeat([]byte{byte(w + 1)}, 1000)
			for i := int64(0); i < 200; i++ {
				off := base + (i*997)%(4*ChunkSize-1000)
				if err := m.Pwrite(p, off, 0); err != nil {
					t.Error(err)
					return
				}
				if _, err := m.BlockStatus(base, 4*ChunkSize); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for w := range workers {
		p := make([]byte, 4*ChunkSize)
		if err := m.Pread(p, int64(w)*4*ChunkSize); err != nil {
			t.Fatal(err)
		}
		for i, b := range p {
			if b != 0 && b != byte(w+1) {
				t.Fatalf("worker %d region byte %d = %d", w, i, b)
			}
		}
	}
}

package tool

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/thinblk/thinblk/image"
)

// BenchOptions are the flags of `thinblk bench`, as qemu-img bench's.
type BenchOptions struct {
	Format string // -f
	Count  int64  // -c, number of requests (default 75000)
	Depth  int    // -d, requests in flight (default 64)
	Size   int64  // -s, bytes per request (default 4096)
	// Step (-S) is the distance between request offsets (default Size).
	Step   int64
	Offset int64 // -o, first offset
	Write  bool  // -w
	// Pattern (--pattern) is the byte written (default 0xa5).
	Pattern byte
	// FlushInterval (--flush-interval) flushes after every that many
	// requests; 0 never. Writes are flushed once more after the timed run.
	FlushInterval int64
	NoDrain       bool   // --no-drain: accepted (flushes never wait for other requests here)
	Cache         string // -t
	Quiet         bool   // -q
	// ForceShare (-U) opens a read-only image although another process
	// writes it (see image.Options).
	ForceShare bool
}

// Bench runs a qemu-img bench style load: Count requests of Size bytes at
// Offset, Offset+Step, ... (wrapping at the end of the image), Depth at a
// time, and prints qemu-img bench's two lines.
func Bench(w io.Writer, name string, o BenchOptions) error {
	if o.Count == 0 {
		o.Count = 75000
	}
	if o.Depth <= 0 {
		o.Depth = 64
	}
	if o.Size <= 0 {
		o.Size = 4096
	}
	if o.Step == 0 {
		o.Step = o.Size
	}
	if o.Count < 0 || o.Step < 0 || o.Offset < 0 {
		return fmt.Errorf("bench: invalid count, step or offset")
	}
	d, err := image.Open(name, image.Options{Format: o.Format, ReadOnly: !o.Write, Cache: o.Cache, ForceShare: o.ForceShare})
	if err != nil {
		return err
	}
	defer d.Close()
	size := d.Size()
	if o.Size > size || o.Offset > size-o.Size {
		return fmt.Errorf("bench: %s: requests of %d bytes at offset %d do not fit in %d bytes", name, o.Size, o.Offset, size)
	}
	op := "read"
	if o.Write {
		op = "write"
	}
	if !o.Quiet {
		fmt.Fprintf(w, "Sending %d %s requests, %d bytes each, %d in parallel (starting at offset %d, step size %d)\n",
			o.Count, op, o.Size, o.Depth, o.Offset, o.Step)
	}
	// Offsets wrap like qemu-img bench's: back to the start once a request
	// would pass the end.
	span := size - o.Offset - o.Size + 1 // offsets o.Offset .. size-o.Size
	offsetOf := func(i int64) int64 {
		if o.Step == 0 {
			return o.Offset
		}
		perLap := (span + o.Step - 1) / o.Step
		return o.Offset + (i%perLap)*o.Step
	}
	var next atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range min(int64(o.Depth), o.Count) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, o.Size)
			if o.Write {
				for i := range buf {
					buf[i] = o.Pattern
				}
			}
			for {
				i := next.Add(1) - 1
				if i >= o.Count {
					return
				}
				off := offsetOf(i)
				var err error
				if o.Write {
					err = d.Pwrite(buf, off, 0)
				} else {
					err = d.Pread(buf, off)
				}
				if err == nil && o.FlushInterval > 0 && (i+1)%o.FlushInterval == 0 {
					err = d.Flush()
				}
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					next.Store(o.Count)
					return
				}
			}
		}()
	}
	wg.Wait()
	// Like qemu-img bench, the time does not include the flush that closing
	// the image does.
	elapsed := time.Since(start)
	if firstErr == nil && o.Write {
		firstErr = d.Flush()
	}
	if firstErr != nil {
		return fmt.Errorf("bench: %s: %w", name, firstErr)
	}
	if !o.Quiet {
		fmt.Fprintf(w, "Run completed in %.3f seconds.\n", elapsed.Seconds())
	}
	return nil
}

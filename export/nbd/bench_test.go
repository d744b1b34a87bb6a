package nbd_test

import (
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"

	"github.com/thinblk/thinblk/block"
	server "github.com/thinblk/thinblk/export/nbd"
	"github.com/thinblk/thinblk/protocol/mem"
	client "github.com/thinblk/thinblk/protocol/nbd"
)

// benchServe serves a 64 MiB mem node and dials it.
func benchServe(b *testing.B) *client.Client {
	sock := filepath.Join(b.TempDir(), "s")
	l, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	m := mem.New(64 << 20)
	m.Pwrite(make([]byte, 64<<20), 0, 0)
	s := &server.Server{Exports: map[string]*server.Export{"": {Node: m, Discard: block.DiscardUnmap}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	go s.Serve(l)
	b.Cleanup(func() { s.Shutdown(b.Context()) })
	c, err := client.Dial("nbd+unix:///?socket="+sock, false)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// BenchmarkPipelined4k runs 4 KiB reads and writes from 32 goroutines
// through our client: a whole-stack (client + server) cost per request.
func BenchmarkPipelined4k(b *testing.B) {
	for _, write := range []bool{false, true} {
		name := "read"
		if write {
			name = "write"
		}
		b.Run(name, func(b *testing.B) {
			c := benchServe(b)
			b.SetParallelism(16)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				p := make([]byte, 4096)
				var off int64
				for pb.Next() {
					off = (off + 7*4096) % (64 << 20)
					var err error
					if write {
						err = c.Pwrite(p, off, 0)
					} else {
						err = c.Pread(p, off)
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

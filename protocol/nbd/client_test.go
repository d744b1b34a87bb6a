package nbd_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/block/blocktest"
	server "github.com/thinblk/thinblk/export/nbd"
	"github.com/thinblk/thinblk/internal/testutil"
	"github.com/thinblk/thinblk/protocol/mem"
	"github.com/thinblk/thinblk/protocol/nbd"
)

// serve exports node on a unix socket for the test's lifetime and returns
// the nbd+unix URL.
func serve(t *testing.T, e *server.Export) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	s := &server.Server{Exports: map[string]*server.Export{e.Name: e}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		<-done
	})
	return "nbd+unix:///" + e.Name + "?socket=" + sock
}

func TestConformanceOverNBD(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    nbd.Options
	}{{"extended", nbd.Options{}}, {"structured", nbd.Options{NoExtendedHeaders: true}}} {
		t.Run(tc.name, func(t *testing.T) {
			blocktest.Run(t, func(t *testing.T, size int64) block.Driver {
				url := serve(t, &server.Export{Name: "disk", Node: mem.New(size), Discard: block.DiscardUnmap})
				c, err := nbd.DialOptions(url, false, tc.o)
				if err != nil {
					t.Fatal(err)
				}
				if c.Extended() == tc.o.NoExtendedHeaders || !c.Structured() {
					t.Fatalf("negotiated extended=%v structured=%v", c.Extended(), c.Structured())
				}
				t.Cleanup(func() { c.Close() })
				return c
			}, blocktest.Options{Ops: 300, Concurrent: true})
		})
	}
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in      string
		network string
		addr    string
		export  string
		bad     bool
	}{
		{"nbd://example.com/disk0", "tcp", "example.com:10809", "disk0", false},
		{"nbd://127.0.0.1:1234", "tcp", "127.0.0.1:1234", "", false},
		{"nbd+unix:///d?socket=/run/s", "unix", "/run/s", "d", false},
		{"nbd+unix:///d", "", "", "", true},
		{"http://x/y", "", "", "", true},
		{"nbd+unix://host/d?socket=/s", "", "", "", true},
	} {
		got, err := nbd.ParseURL(tc.in)
		if tc.bad {
			if err == nil || !errors.Is(err, block.ErrInvalid) {
				t.Errorf("%s: accepted (%v)", tc.in, err)
			}
			continue
		}
		if err != nil || got.Network != tc.network || got.Address != tc.addr || got.Export != tc.export {
			t.Errorf("%s: got %+v, %v", tc.in, got, err)
		}
	}
}

// TestAgainstQemuNbd runs the conformance suite through our client against
// qemu-nbd serving a raw file: the client must speak to a real server.
func TestAgainstQemuNbd(t *testing.T) {
	testutil.NeedTool(t, "qemu-nbd")
	blocktest.Run(t, func(t *testing.T, size int64) block.Driver {
		dir := t.TempDir()
		img, sock := filepath.Join(dir, "img"), filepath.Join(dir, "s")
		if err := os.WriteFile(img, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		os.Truncate(img, size)
		cmd := exec.Command("qemu-nbd", "-t", "-f", "raw", "--discard=unmap", "-k", sock, img)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		var c *nbd.Client
		var err error
		for i := 0; i < 100; i++ {
			if c, err = nbd.Dial("nbd+unix:///?socket="+sock, false); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}, blocktest.Options{Ops: 200})
}

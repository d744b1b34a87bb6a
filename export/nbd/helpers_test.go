package nbd

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// testLogger keeps test output quiet unless -v.
func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(discard{}, nil))
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// startServer serves s on a fresh unix socket and returns its path and the
// nbd+unix URI of export name.
func startServer(t *testing.T, s *Server, name string) (sock, uri string) {
	t.Helper()
	if s.Logger == nil {
		s.Logger = testLogger(t)
	}
	dir := t.TempDir()
	sock = filepath.Join(dir, "nbd.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != ErrServerClosed && err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return sock, "nbd+unix:///" + name + "?socket=" + sock
}

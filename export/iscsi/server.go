package iscsi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"

	"github.com/thinblk/thinblk/scsi"
)

// Target is one iSCSI target: a name and its logical units.
type Target struct {
	// Name is the iSCSI name (iqn.... or eui....).
	Name string
	// LUNs are the logical units, by LUN.
	LUNs *scsi.Target
	// CHAP, when set, overrides Server.CHAP for sessions to this target.
	CHAP *CHAP
}

// Server is an iSCSI target server. Set the fields, then call Serve; do not
// change them afterwards.
type Server struct {
	// Targets are the targets offered; names must be unique.
	Targets []*Target
	// CHAP, when set, requires CHAP authentication of every session
	// (discovery included) unless a target has its own.
	CHAP *CHAP
	// Logger receives one line per session event; nil means slog.Default.
	Logger *slog.Logger
	// MaxSessions bounds concurrent connections; 0 means 256.
	MaxSessions int

	mu        sync.Mutex // guards the fields below
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	tsih      uint16
	closed    bool
	wg        sync.WaitGroup
}

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("iscsi: server closed")

// Validate checks the configuration: at least one target, unique
// well-formed names, and LUNs for each.
func (s *Server) Validate() error {
	if len(s.Targets) == 0 {
		return errors.New("iscsi: no targets")
	}
	seen := map[string]bool{}
	for _, t := range s.Targets {
		name := strings.ToLower(t.Name)
		if !strings.HasPrefix(name, "iqn.") && !strings.HasPrefix(name, "eui.") && !strings.HasPrefix(name, "naa.") {
			return fmt.Errorf("iscsi: target name %q: not an iqn., eui. or naa. name", t.Name)
		}
		if seen[name] {
			return fmt.Errorf("iscsi: target name %q used twice", t.Name)
		}
		seen[name] = true
		if t.LUNs == nil || len(t.LUNs.LUNs()) == 0 {
			return fmt.Errorf("iscsi: target %q has no LUNs", t.Name)
		}
	}
	return nil
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// target finds a target by name (iSCSI names compare case-insensitively).
func (s *Server) target(name string) *Target {
	for _, t := range s.Targets {
		if strings.EqualFold(t.Name, name) {
			return t
		}
	}
	return nil
}

func (s *Server) targetList() []*Target { return s.Targets }

// credsFor returns the CHAP credentials a session to t (nil: discovery)
// must present, or nil.
func (s *Server) credsFor(t *Target) *CHAP {
	if t != nil && t.CHAP != nil {
		return t.CHAP
	}
	return s.CHAP
}

func (s *Server) newTSIH() uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tsih++
	if s.tsih == 0 {
		s.tsih = 1
	}
	return s.tsih
}

// Serve accepts connections on l until l fails or the server is shut
// down; each connection is served in its own goroutines. It returns
// ErrServerClosed after Shutdown or Close.
func (s *Server) Serve(l net.Listener) error {
	if err := s.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	if s.listeners == nil {
		s.listeners = map[net.Listener]struct{}{}
		s.conns = map[net.Conn]struct{}{}
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	maxSessions := s.MaxSessions
	if maxSessions <= 0 {
		maxSessions = 256
	}
	for {
		nc, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		s.mu.Lock()
		if s.closed || len(s.conns) >= maxSessions {
			s.mu.Unlock()
			s.logger().Warn("iscsi connection refused", "remote", nc.RemoteAddr().String(), "reason", "too many sessions")
			nc.Close()
			continue
		}
		s.conns[nc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		if tc, ok := nc.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
		}
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, nc)
				s.mu.Unlock()
			}()
			newSession(s, nc).serve()
		}()
	}
}

// Close stops the listeners and drops every connection at once.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// Shutdown stops accepting connections and waits for sessions to end
// until ctx is done, then drops the rest.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.Close()
		return ctx.Err()
	}
}

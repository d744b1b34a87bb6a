package nbd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("nbd: server closed")

// MaxConnBuffer is the payload memory one connection may hold at a time
// (write payloads read ahead and read replies being built).
const MaxConnBuffer = 64 << 20

// Server serves Exports to NBD clients. Set the fields before Serve; they
// must not change afterwards.
type Server struct {
	// Exports by name. A client asking for "" gets the export named "", or
	// the only export when there is exactly one.
	Exports map[string]*Export
	// TLSConfig, when non-nil, makes TLS mandatory (FORCEDTLS): every
	// option but STARTTLS and ABORT is refused with NBD_REP_ERR_TLS_REQD
	// until the client upgrades, so plaintext clients cannot use an export.
	TLSConfig *tls.Config
	// Logger gets one line per connection event (nil: slog.Default()).
	Logger *slog.Logger
	// Workers is the number of requests one connection runs at once
	// (default 4).
	Workers int
	// MaxConnections limits simultaneous clients (qemu-nbd -e); 0 means no
	// limit. Further clients wait in the listen queue.
	MaxConnections int
	// OneShot makes Serve return nil once the last client has disconnected
	// after at least one connected (qemu-nbd without --persistent).
	OneShot bool
	// HandshakeTimeout bounds the option haggling (default 30 s).
	HandshakeTimeout time.Duration

	mu        sync.Mutex // guards the fields below
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	closing   bool
	served    int // connections ever accepted (OneShot)
	idle      chan struct{}
	wg        sync.WaitGroup // running connections
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Server) workers() int {
	if s.Workers > 0 {
		return s.Workers
	}
	return 4
}

// lookup finds an export by the name a client sent.
func (s *Server) lookup(name string) *Export {
	if e, ok := s.Exports[name]; ok {
		return e
	}
	if name == "" && len(s.Exports) == 1 {
		for _, e := range s.Exports {
			return e
		}
	}
	return nil
}

// Serve accepts connections on l until Shutdown (then it returns
// ErrServerClosed), until the listener fails, or, with OneShot, until the
// last client leaves (then nil). It checks every export first.
func (s *Server) Serve(l net.Listener) error {
	for name, e := range s.Exports {
		if e.Name != name {
			return fmt.Errorf("nbd: export %q registered under name %q", e.Name, name)
		}
		if err := e.prepare(); err != nil {
			return fmt.Errorf("nbd: %w", err)
		}
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrServerClosed
	}
	if s.listeners == nil {
		s.listeners = map[net.Listener]struct{}{}
		s.conns = map[*conn]struct{}{}
		s.idle = make(chan struct{})
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		l.Close()
	}()

	var slots chan struct{}
	if s.MaxConnections > 0 {
		slots = make(chan struct{}, s.MaxConnections)
	}
	var delay time.Duration
	for {
		if slots != nil {
			select {
			case slots <- struct{}{}:
			case <-s.idle:
				return nil
			}
		}
		nc, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closing, idle := s.closing, s.idle
			s.mu.Unlock()
			if closing {
				return ErrServerClosed
			}
			select {
			case <-idle:
				return nil
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				if slots != nil {
					<-slots
				}
				continue
			}
			return err
		}
		delay = 0
		c := newConn(s, nc)
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			nc.Close()
			return ErrServerClosed
		}
		s.conns[c] = struct{}{}
		s.served++
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			last := s.OneShot && len(s.conns) == 0 && s.served > 0 && !s.closing
			if last {
				select {
				case <-s.idle:
				default:
					close(s.idle)
				}
				for l := range s.listeners {
					l.Close()
				}
			}
			s.mu.Unlock()
			if slots != nil {
				<-slots
			}
		}()
	}
}

// Shutdown stops accepting connections, ends option haggling with
// NBD_REP_ERR_SHUTDOWN or a disconnect, lets every request already read
// finish and be answered, closes the connections, and then flushes every
// export's node so that every acknowledged write is durable. If ctx ends
// first, connections are closed at once (requests still running finish in
// the background) and ctx's error is returned after the flush.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.stop()
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		s.mu.Lock()
		for c := range s.conns {
			c.raw.Close()
		}
		s.mu.Unlock()
	}
	for _, e := range s.Exports {
		if e.node != nil && e.writable() {
			if ferr := e.node.Flush(); ferr != nil && err == nil {
				err = fmt.Errorf("nbd: flush export %q: %w", e.Name, ferr)
			}
		}
	}
	if err != nil {
		s.logger().Error("nbd: server stopped", "err", err.Error())
	} else {
		s.logger().Info("nbd: server stopped, exports flushed")
	}
	return err
}

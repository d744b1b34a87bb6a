package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"sync"
	"syscall"

	"github.com/spf13/cobra"

	_ "github.com/thinblk/thinblk/protocol/nbd" // nbd:// and nbd+unix:// names
	"github.com/thinblk/thinblk/tool"
)

// readyFDEnv names the inherited pipe a --fork child reports readiness on.
const readyFDEnv = "THINBLK_READY_FD"

func init() {
	var (
		o          tool.NBDOptions
		fork       bool
		nocache    bool
		verbose    bool
		gomaxprocs int
		cpuprofile string
		tlsDir     string
	)
	c := &cobra.Command{
		Use:   "nbd [-f FMT] [-r] [-t] [-k SOCKET | -b ADDR -p PORT] [-x NAME] [options] IMAGE",
		Short: "export an image over NBD (qemu-nbd's flags)",
		Long: `Export IMAGE over NBD until SIGTERM/SIGINT (with -t) or until the client
disconnects. On the way out every acknowledged write is flushed.

Discard is off by default (--discard=ignore): TRIM is accepted and does
nothing. --discard=unmap passes it to the image.`,
		Args: rangeArgs(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			if tlsDir != "" {
				o.TLSCert, o.TLSKey, o.TLSCA = tool.TLSFilesFromDir(tlsDir)
			}
			if nocache && o.Cache == "" {
				o.Cache = "none"
			}
			if gomaxprocs > 0 {
				runtime.GOMAXPROCS(gomaxprocs)
			}
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			logOut := &switchWriter{w: c.ErrOrStderr()}
			o.Logger = slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level}))
			if fork && os.Getenv(readyFDEnv) == "" {
				return forkAndWait()
			}
			if fd := os.Getenv(readyFDEnv); fd != "" {
				o.Ready = readyNotifier(fd, logOut)
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			if cpuprofile != "" {
				pf, err := os.Create(cpuprofile)
				if err != nil {
					return err
				}
				pprof.StartCPUProfile(pf)
				defer func() { pprof.StopCPUProfile(); pf.Close() }()
			}
			return tool.NBD(ctx, args[0], o)
		},
	}
	f := c.Flags()
	f.SortFlags = false
	f.StringVarP(&o.Format, "format", "f", "", "image format (default: probe)")
	f.BoolVarP(&o.ReadOnly, "read-only", "r", false, "export read-only")
	f.StringVarP(&o.Snapshot, "load-snapshot", "l", "", "export an internal snapshot (ID_OR_NAME or snapshot.id=ID,snapshot.name=NAME), read-only")
	f.BoolVarP(&o.Persistent, "persistent", "t", false, "keep serving after the last client disconnects")
	f.StringVarP(&o.Socket, "socket", "k", "", "listen on this unix socket instead of TCP")
	f.IntVarP(&o.Port, "port", "p", 10809, "TCP port")
	f.StringVarP(&o.Bind, "bind", "b", "127.0.0.1", "TCP address to listen on")
	f.StringVarP(&o.ExportName, "export-name", "x", "", "export name")
	f.StringVarP(&o.Description, "description", "D", "", "export description")
	f.IntVarP(&o.Shared, "shared", "e", 1, "clients served at once (0: no limit); above 1 advertises multi-conn")
	f.StringVar(&o.Discard, "discard", "ignore", "guest discard requests: ignore or unmap")
	f.StringVar(&o.DetectZeroes, "detect-zeroes", "off", "turn all-zero writes into write-zeroes: off, on or unmap")
	f.BoolVarP(&o.AllocationDepth, "allocation-depth", "A", false, "offer the qemu:allocation-depth metadata context")
	f.StringVar(&o.Cache, "cache", "", "cache mode: writeback (default), none, writethrough, directsync, unsafe")
	f.BoolVarP(&nocache, "nocache", "n", false, "same as --cache=none")
	f.StringVar(&o.PIDFile, "pid-file", "", "write the server's pid to this file")
	f.BoolVar(&fork, "fork", false, "go to the background once the server listens")
	f.StringVar(&o.TLSCert, "tls-cert", "", "server certificate (PEM); with --tls-key makes TLS mandatory")
	f.StringVar(&o.TLSKey, "tls-key", "", "server private key (PEM)")
	f.StringVar(&o.TLSCA, "tls-ca", "", "CA bundle (PEM): require client certificates signed by it")
	f.StringVar(&tlsDir, "tls-dir", "", "qemu-style x509 folder: server-cert.pem, server-key.pem and (client certificates required) ca-cert.pem")
	f.IntVar(&o.Workers, "workers", 4, "requests one connection runs at once")
	f.IntVar(&gomaxprocs, "gomaxprocs", 0, "Go scheduler threads (0: default)")
	f.BoolVarP(&verbose, "verbose", "v", false, "debug logging")
	f.StringVar(&cpuprofile, "cpuprofile", "", "write a Go CPU profile to this file (benchmarking)")
	f.MarkHidden("cpuprofile")
	rootCmd.AddCommand(c)
}

// forkAndWait re-runs this command line in a new session with a pipe, and
// returns once the child reports that it listens (or exits).
func forkAndWait() error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(os.Environ(), readyFDEnv+"=3")
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	w.Close()
	var b [1]byte
	n, _ := r.Read(b[:])
	if n == 1 {
		cmd.Process.Release()
		return nil
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("server failed to start: %w", err)
	}
	return fmt.Errorf("server exited before listening")
}

// readyNotifier returns a Ready callback for a --fork child: it writes one
// byte to the inherited pipe and, like qemu-nbd, lets go of the parent's
// stdout and stderr (logging stops), so that whoever waits for the
// parent's output is not held by the daemon.
func readyNotifier(fd string, log *switchWriter) func(net.Addr) {
	return func(net.Addr) {
		var n int
		fmt.Sscan(fd, &n)
		f := os.NewFile(uintptr(n), "ready")
		if f != nil {
			f.Write([]byte{1})
			f.Close()
		}
		os.Unsetenv(readyFDEnv)
		log.set(io.Discard)
		os.Stdout.Close()
		os.Stderr.Close()
	}
}

// switchWriter is an io.Writer whose target can change while in use.
type switchWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *switchWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *switchWriter) set(w io.Writer) {
	s.mu.Lock()
	s.w = w
	s.mu.Unlock()
}

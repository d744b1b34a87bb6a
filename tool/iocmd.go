package tool

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
)

// errReported marks a command failure that was already printed (a pattern
// mismatch).
var errReported = errors.New("already reported")

// ioChunk bounds the buffer one read or write command uses; longer requests
// are issued in pieces of this size.
const ioChunk = 32 << 20

// ioSession runs commands against one open image.
type ioSession struct {
	d   block.Driver
	w   io.Writer
	buf []byte
}

// ioCommand is one qemu-io command: its option letters (a ':' after a
// letter means it takes a value) and the number of positional arguments.
type ioCommand struct {
	opts  string
	nargs int
	run   func(s *ioSession, opts map[byte]string, args []string) error
}

var ioCommands = map[string]ioCommand{
	"read":      {"P:qv", 2, (*ioSession).read},
	"write":     {"P:qzufcnp", 2, (*ioSession).write},
	"discard":   {"q", 2, (*ioSession).discard},
	"flush":     {"", 0, (*ioSession).flush},
	"aio_flush": {"", 0, (*ioSession).flush},
	"map":       {"", 0, (*ioSession).mapCmd},
	"length":    {"", 0, (*ioSession).length},
	"sleep":     {"", 1, (*ioSession).sleep},
	"sigraise":  {"", 1, (*ioSession).sigraise},
}

// compressedWriter is implemented by formats that store clusters
// compressed (qcow2); write -c uses it.
type compressedWriter interface {
	WriteCompressed(p []byte, off int64) error
}

func (s *ioSession) exec(line string) error {
	fields := strings.Fields(line)
	name := fields[0]
	c, ok := ioCommands[name]
	if !ok {
		return fmt.Errorf("unknown command %q (known: aio_flush, discard, flush, length, map, read, sigraise, sleep, write)", name)
	}
	opts, args, err := getopt(fields[1:], c.opts)
	if err != nil {
		return err
	}
	if len(args) != c.nargs {
		return fmt.Errorf("%s takes %d arguments, got %d", name, c.nargs, len(args))
	}
	return c.run(s, opts, args)
}

// getopt splits options from positional arguments like POSIX getopt:
// options come first, may be combined ("-zu"), a value follows its letter
// or the next argument, and "--" ends the options.
func getopt(args []string, spec string) (map[byte]string, []string, error) {
	opts := map[byte]string{}
	for len(args) > 0 {
		a := args[0]
		if a == "--" {
			return opts, args[1:], nil
		}
		if len(a) < 2 || a[0] != '-' {
			break
		}
		args = args[1:]
		for i := 1; i < len(a); i++ {
			c := a[i]
			j := strings.IndexByte(spec, c)
			if j < 0 || c == ':' {
				return nil, nil, fmt.Errorf("unknown option -%c", c)
			}
			if j+1 < len(spec) && spec[j+1] == ':' {
				v := a[i+1:]
				if v == "" {
					if len(args) == 0 {
						return nil, nil, fmt.Errorf("option -%c needs a value", c)
					}
					v, args = args[0], args[1:]
				}
				opts[c] = v
				break
			}
			opts[c] = ""
		}
	}
	return opts, args, nil
}

// rangeArgs parses OFF LEN and checks them against the image size.
func (s *ioSession) rangeArgs(args []string) (off, n int64, err error) {
	if off, err = ParseSize(args[0]); err != nil {
		return 0, 0, fmt.Errorf("offset: %w", err)
	}
	if n, err = ParseSize(args[1]); err != nil {
		return 0, 0, fmt.Errorf("length: %w", err)
	}
	if size := s.d.Size(); off > size || n > size-off {
		return 0, 0, fmt.Errorf("offset %d + length %d is past the end of the image (%d bytes): %w", off, n, size, block.ErrOutOfRange)
	}
	return off, n, nil
}

func parsePattern(v string) (byte, error) {
	p, err := strconv.ParseInt(v, 0, 64)
	if err != nil || p < 0 || p > 255 {
		return 0, fmt.Errorf("%q is not a valid pattern byte", v)
	}
	return byte(p), nil
}

func (s *ioSession) buffer(n int64) []byte {
	c := int(min(n, ioChunk))
	if cap(s.buf) < c {
		s.buf = make([]byte, c)
	}
	return s.buf[:c]
}

func (s *ioSession) read(opts map[byte]string, args []string) error {
	off, n, err := s.rangeArgs(args)
	if err != nil {
		return err
	}
	var pattern byte
	_, check := opts['P']
	if check {
		if pattern, err = parsePattern(opts['P']); err != nil {
			return err
		}
	}
	start := time.Now()
	mismatch := false
	for done := int64(0); done < n; {
		b := s.buffer(n - done)
		if err := s.d.Pread(b, off+done); err != nil {
			return err
		}
		if check && !mismatch {
			for _, c := range b {
				if c != pattern {
					mismatch = true
					break
				}
			}
		}
		if _, v := opts['v']; v {
			hexdump(s.w, b, off+done)
		}
		done += int64(len(b))
	}
	elapsed := time.Since(start)
	if mismatch {
		fmt.Fprintf(s.w, "Pattern verification failed at offset %d, %d bytes\n", off, n)
	}
	if _, q := opts['q']; !q {
		report(s.w, "read", elapsed, off, n)
	}
	if mismatch {
		return errReported
	}
	return nil
}

func (s *ioSession) write(opts map[byte]string, args []string) error {
	off, n, err := s.rangeArgs(args)
	if err != nil {
		return err
	}
	_, zero := opts['z']
	_, unmap := opts['u']
	_, pset := opts['P']
	_, compressed := opts['c']
	_, noFallback := opts['n']
	var flags block.Flags
	if _, fua := opts['f']; fua {
		flags |= block.FUA
	}
	switch {
	case zero && pset:
		return errors.New("-z and -P cannot be used together")
	case zero && compressed:
		return errors.New("-z and -c cannot be used together")
	case unmap && !zero:
		return errors.New("-u needs -z")
	case noFallback && !zero:
		return errors.New("-n needs -z")
	}
	start := time.Now()
	if zero {
		if unmap {
			flags |= block.MayUnmap
		}
		if noFallback {
			flags |= block.NoFallback
		}
		if err := block.ZeroRange(s.d, off, n, flags); err != nil {
			return err
		}
	} else {
		pattern := byte(0xcd)
		if pset {
			if pattern, err = parsePattern(opts['P']); err != nil {
				return err
			}
		}
		write := func(b []byte, off int64) error { return s.d.Pwrite(b, off, flags) }
		chunk := int64(ioChunk)
		if compressed {
			if write, chunk, err = s.compressedWrite(); err != nil {
				return err
			}
		}
		for done := int64(0); done < n; {
			b := s.buffer(min(n-done, chunk))
			for i := range b {
				b[i] = pattern
			}
			if err := write(b, off+done); err != nil {
				return err
			}
			done += int64(len(b))
		}
	}
	if _, q := opts['q']; !q {
		report(s.w, "wrote", time.Since(start), off, n)
	}
	return nil
}

// compressedWrite returns the format's compressed write, which takes one
// cluster at a time, and the cluster size.
func (s *ioSession) compressedWrite() (func([]byte, int64) error, int64, error) {
	cw, ok := block.As[compressedWriter](s.d)
	cs, ok2 := block.As[image.ClusterSizer](s.d)
	if !ok || !ok2 || cs.ClusterSize() <= 0 {
		return nil, 0, fmt.Errorf("write -c: the image's format does not store compressed data: %w", block.ErrNotSupported)
	}
	return cw.WriteCompressed, cs.ClusterSize(), nil
}

func (s *ioSession) discard(opts map[byte]string, args []string) error {
	off, n, err := s.rangeArgs(args)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := s.d.Discard(off, n, 0); err != nil {
		return err
	}
	if _, q := opts['q']; !q {
		report(s.w, "discard", time.Since(start), off, n)
	}
	return nil
}

func (s *ioSession) flush(map[byte]string, []string) error { return s.d.Flush() }

// sleep pauses for the given number of milliseconds (qemu-io's sleep).
func (s *ioSession) sleep(_ map[byte]string, args []string) error {
	ms, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil || ms < 0 {
		return fmt.Errorf("invalid sleep time %q (milliseconds)", args[0])
	}
	time.Sleep(time.Duration(ms) * time.Millisecond)
	return nil
}

// sigraise sends a signal to this process, as qemu-io's sigraise: with 9
// (SIGKILL) it dies on the spot, leaving the image as a crash would.
func (s *ioSession) sigraise(_ map[byte]string, args []string) error {
	sig, err := strconv.Atoi(args[0])
	if err != nil || sig <= 0 || sig > 64 {
		return fmt.Errorf("invalid signal %q", args[0])
	}
	if w, ok := s.w.(interface{ Flush() error }); ok {
		w.Flush()
	}
	p, err := os.FindProcess(os.Getpid())
	if err != nil {
		return err
	}
	if err := p.Signal(syscall.Signal(sig)); err != nil {
		return err
	}
	time.Sleep(100 * time.Millisecond) // let a deadly signal land before the next command
	return nil
}

func (s *ioSession) length(map[byte]string, []string) error {
	fmt.Fprintln(s.w, FormatIOSize(float64(s.d.Size())))
	return nil
}

// mapCmd prints qemu-io's map: runs allocated in the top layer or not.
func (s *ioSession) mapCmd(map[byte]string, []string) error {
	size := s.d.Size()
	for off := int64(0); off < size; {
		e, err := s.d.BlockStatus(off, size-off)
		if err != nil {
			return err
		}
		allocated := e.Status.Present()
		n := e.Len
		for off+n < size {
			e2, err := s.d.BlockStatus(off+n, size-off-n)
			if err != nil {
				return err
			}
			if e2.Status.Present() != allocated {
				break
			}
			n += e2.Len
		}
		state := "not allocated"
		if allocated {
			state = "    allocated"
		}
		fmt.Fprintf(s.w, "%s (0x%x) bytes %s at offset %s (0x%x)\n",
			FormatIOSize(float64(n)), n, state, FormatIOSize(float64(off)), off)
		off += n
	}
	return nil
}

// report prints qemu-io's two result lines.
func report(w io.Writer, op string, elapsed time.Duration, off, n int64) {
	secs := max(elapsed.Seconds(), 1e-9)
	fmt.Fprintf(w, "%s %d/%d bytes at offset %d\n", op, n, n, off)
	fmt.Fprintf(w, "%s, 1 ops; %s (%s/sec and %.4f ops/sec)\n",
		FormatIOSize(float64(n)), timeString(elapsed), FormatIOSize(float64(n)/secs), 1/secs)
}

// timeString is qemu-io's timestr: "00.01 sec" under a second, else
// "H:MM:SS.ss".
func timeString(d time.Duration) string {
	sec := d.Seconds()
	if sec < 1 {
		return fmt.Sprintf("%05.2f sec", sec)
	}
	whole := int64(math.Floor(sec))
	return fmt.Sprintf("%d:%02d:%05.2f", whole/3600, whole%3600/60, float64(whole%60)+sec-float64(whole))
}

// hexdump prints b as qemu-io's read -v does.
func hexdump(w io.Writer, b []byte, off int64) {
	for i := 0; i < len(b); i += 16 {
		line := b[i:min(i+16, len(b))]
		var sb strings.Builder
		fmt.Fprintf(&sb, "%08x:  ", off+int64(i))
		for _, c := range line {
			fmt.Fprintf(&sb, "%02x ", c)
		}
		sb.WriteByte(' ')
		for _, c := range line {
			if c >= 0x20 && c < 0x7f {
				sb.WriteByte(c)
			} else {
				sb.WriteByte('.')
			}
		}
		sb.WriteByte('\n')
		io.WriteString(w, sb.String())
	}
}

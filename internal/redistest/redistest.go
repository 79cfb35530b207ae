// Package redistest runs a real redis-server for tests: on a free loopback
// port, in a temporary folder, without persistence, stopped at the end of
// the test. Tests that need it call Start; when redis-server is not
// installed they are skipped with a loud message, or fail when CI=true
// (scripts/install-test-deps.sh installs it).
package redistest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Server is one redis-server process. Stop and Restart let a test take
// Redis away and bring it back on the same port.
type Server struct {
	tb   testing.TB
	bin  string
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
	logs *os.File
	opts Options
}

// Options of StartWith. The zero value is Start's server.
type Options struct {
	// Bind is the address to listen on and to check; default 127.0.0.1.
	// A server on another address than 127.0.0.1 runs without protected
	// mode (it has no password; the tests' networks are their own).
	Bind string
	// Port to listen on; 0: a free one (checked on 127.0.0.1).
	Port int
	// Wrap runs the server through a command, e.g. ip netns exec NS.
	Wrap []string
	// Args are added to redis-server's command line (--replicaof …).
	Args []string
	// Ping checks that the server answers; nil: a PING to Bind:Port.
	Ping func(addr string) error
}

// Binary returns the path of redis-server, or skips tb (fails it with
// CI=true) when it is not installed.
func Binary(tb testing.TB) string {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		for _, p := range []string{"/usr/bin/redis-server", "/usr/local/bin/redis-server"} {
			if _, serr := os.Stat(p); serr == nil {
				return p
			}
		}
		msg := "redis-server is not installed: tests against a real Redis are SKIPPED; run scripts/install-test-deps.sh (Debian package redis-server)"
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg)
		}
		tb.Skip("!!! " + msg)
	}
	return bin
}

// Start runs a redis-server on a free loopback port and stops it when the
// test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	return StartWith(tb, Options{})
}

// StartWith runs a redis-server as opts say and stops it when the test
// ends.
func StartWith(tb testing.TB, opts Options) *Server {
	tb.Helper()
	if opts.Bind == "" {
		opts.Bind = "127.0.0.1"
	}
	s := &Server{tb: tb, bin: Binary(tb), dir: tb.TempDir(), opts: opts}
	var err error
	for range 3 { // a free port can be taken between picking and binding
		if s.port = opts.Port; s.port == 0 {
			if s.port, err = freePort(); err != nil {
				continue
			}
		}
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		tb.Fatalf("starting redis-server: %v", err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.opts.Bind, strconv.Itoa(s.port)) }

// Port is the port it listens on.
func (s *Server) Port() int { return s.port }

// URL is redis://127.0.0.1:PORT/0.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

func (s *Server) start() error {
	logs, err := os.CreateTemp(s.dir, "redis-*.log")
	if err != nil {
		return err
	}
	s.logs = logs
	protected := "yes"
	if s.opts.Bind != "127.0.0.1" {
		protected = "no"
	}
	args := append([]string{}, s.opts.Wrap...)
	args = append(args, s.bin, "--port", strconv.Itoa(s.port), "--bind", s.opts.Bind,
		"--save", "", "--appendonly", "no", "--dir", s.dir, "--protected-mode", protected)
	args = append(args, s.opts.Args...)
	s.cmd = exec.Command(args[0], args[1:]...)
	s.cmd.Stdout, s.cmd.Stderr = logs, logs
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test binary
	if err := s.cmd.Start(); err != nil {
		return err
	}
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		cmd.Wait()
		close(done)
	}(s.cmd, s.done)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			b, _ := os.ReadFile(logs.Name())
			return fmt.Errorf("redis-server exited at start:\n%s", b)
		default:
		}
		check := ping
		if s.opts.Ping != nil {
			check = s.opts.Ping
		}
		if check(s.Addr()) == nil {
			return nil
		}
		time.Sleep(10 * time.Millisecond) // poll interval while redis-server starts
	}
	s.kill()
	return fmt.Errorf("redis-server on %s did not answer PING within 10s", s.Addr())
}

// Stop kills the server (SIGKILL: as abrupt as a crash) and waits for it.
// Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.kill()
}

func (s *Server) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
	default:
		s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// Restart starts the server again on the same port, with no data (it has
// no persistence).
func (s *Server) Restart() {
	s.tb.Helper()
	s.kill()
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) { // the port may linger a moment
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond) // retry interval
	}
	s.tb.Fatalf("restarting redis-server on %s: %v", s.Addr(), err)
}

// Pid is the server process's id.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Do sends one command (inline protocol, arguments without spaces) and
// returns the first line of the answer: enough for test set-up and checks
// without a client library.
func (s *Server) Do(args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := fmt.Fprintf(c, "%s\r\n", strings.Join(args, " ")); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimRight(line, "\r\n"), err
}

// Ping sends PING to the server at addr and checks the PONG.
func Ping(addr string) error { return ping(addr) }

func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

package redistest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// MasterName is the Sentinel master name StartSentinel monitors.
const MasterName = "hpmaster"

// Sentinel is a primary, its replica and three redis-sentinel processes
// watching them with short timeouts (down-after-milliseconds 500), all on
// loopback, stopped when the test ends.
type Sentinel struct {
	Primary, Replica *Server
	Sentinels        []*SentinelProc
}

// SentinelProc is one redis-sentinel process.
type SentinelProc struct {
	Port int
	cmd  *exec.Cmd
	done chan struct{}
	logs string
}

// Addr is 127.0.0.1:port.
func (p *SentinelProc) Addr() string { return "127.0.0.1:" + strconv.Itoa(p.Port) }

// SentinelBinary returns the path of redis-sentinel, or skips tb (fails
// it with CI=true) when it is not installed.
func SentinelBinary(tb testing.TB) string {
	tb.Helper()
	if bin, err := exec.LookPath("redis-sentinel"); err == nil {
		return bin
	}
	if _, err := os.Stat("/usr/bin/redis-sentinel"); err == nil {
		return "/usr/bin/redis-sentinel"
	}
	msg := "redis-sentinel is not installed: the Sentinel tests are SKIPPED; run scripts/install-test-deps.sh (Debian package redis-sentinel)"
	if os.Getenv("CI") == "true" {
		tb.Fatal(msg)
	}
	tb.Skip("!!! " + msg)
	return ""
}

// StartSentinel starts the primary, the replica and three sentinels, and
// waits until every sentinel knows the primary, its replica and the
// other sentinels, so that a fail-over can happen.
func StartSentinel(tb testing.TB) *Sentinel {
	tb.Helper()
	bin := SentinelBinary(tb)
	st := &Sentinel{Primary: Start(tb)}
	st.Replica = StartWith(tb, Options{Args: []string{"--replicaof", "127.0.0.1", strconv.Itoa(st.Primary.Port())}})
	WaitFor(tb, 10*time.Second, "the replica to sync with the primary", func() bool {
		info, _ := Info(st.Replica.Addr(), "replication")
		return strings.Contains(info, "master_link_status:up")
	})
	for i := range 3 {
		st.Sentinels = append(st.Sentinels, startSentinelProc(tb, bin, st.Primary.Port(), i))
	}
	WaitFor(tb, 15*time.Second, "the sentinels to know the replica and each other", func() bool {
		for _, p := range st.Sentinels {
			info, err := Info(p.Addr(), "sentinel")
			if err != nil || !strings.Contains(info, "status=ok") || !strings.Contains(info, "slaves=1,sentinels=3") {
				return false
			}
		}
		return true
	})
	return st
}

func startSentinelProc(tb testing.TB, bin string, primaryPort, i int) *SentinelProc {
	tb.Helper()
	dir := tb.TempDir()
	var lastErr error
	for range 3 { // a free port can be taken between picking and binding
		port, err := freePort()
		if err != nil {
			lastErr = err
			continue
		}
		conf := filepath.Join(dir, "sentinel.conf")
		text := fmt.Sprintf(`port %d
bind 127.0.0.1
dir %s
sentinel monitor %s 127.0.0.1 %d 2
sentinel down-after-milliseconds %s 500
sentinel failover-timeout %s 5000
sentinel parallel-syncs %s 1
`, port, dir, MasterName, primaryPort, MasterName, MasterName, MasterName)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			tb.Fatal(err)
		}
		p := &SentinelProc{Port: port, done: make(chan struct{}), logs: filepath.Join(dir, "sentinel.log")}
		logs, err := os.Create(p.logs)
		if err != nil {
			tb.Fatal(err)
		}
		p.cmd = exec.Command(bin, conf)
		p.cmd.Stdout, p.cmd.Stderr = logs, logs
		p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := p.cmd.Start(); err != nil {
			logs.Close()
			tb.Fatalf("starting redis-sentinel: %v", err)
		}
		go func() { p.cmd.Wait(); logs.Close(); close(p.done) }()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case <-p.done:
				b, _ := os.ReadFile(p.logs)
				lastErr = fmt.Errorf("redis-sentinel %d exited at start:\n%s", i, b)
			default:
				if ping(p.Addr()) != nil {
					time.Sleep(10 * time.Millisecond) // poll interval while it starts
					continue
				}
				tb.Cleanup(func() {
					p.cmd.Process.Kill()
					<-p.done
				})
				return p
			}
			break
		}
		if lastErr == nil {
			p.cmd.Process.Kill()
			<-p.done
			lastErr = fmt.Errorf("redis-sentinel on %s did not answer PING within 10s", p.Addr())
		}
	}
	tb.Fatalf("starting redis-sentinel: %v", lastErr)
	return nil
}

// URL is redis-sentinel://s1,s2,s3/MasterName/0.
func (st *Sentinel) URL() string {
	addrs := make([]string, len(st.Sentinels))
	for i, p := range st.Sentinels {
		addrs[i] = p.Addr()
	}
	return "redis-sentinel://" + strings.Join(addrs, ",") + "/" + MasterName + "/0"
}

// MasterAddr asks the first sentinel that answers for the primary's
// address.
func (st *Sentinel) MasterAddr() (string, error) {
	var lastErr error
	for _, p := range st.Sentinels {
		lines, err := command(p.Addr(), "SENTINEL", "get-master-addr-by-name", MasterName)
		if err != nil {
			lastErr = err
			continue
		}
		if len(lines) == 2 {
			return net.JoinHostPort(lines[0], lines[1]), nil
		}
		lastErr = fmt.Errorf("SENTINEL get-master-addr-by-name answered %q", lines)
	}
	return "", lastErr
}

// Info is the text of INFO section from the server at addr.
func Info(addr, section string) (string, error) {
	lines, err := command(addr, "INFO", section)
	return strings.Join(lines, "\n"), err
}

// WaitFor polls cond every 10ms until it holds, failing tb after d.
func WaitFor(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
}

// command sends one command in RESP and returns its answer flattened to
// lines: a bulk string's lines, or an array's bulk strings.
func command(addr string, args ...string) ([]string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return nil, err
	}
	r := bufio.NewReader(c)
	return readReply(r)
}

func readReply(r *bufio.Reader) ([]string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return nil, fmt.Errorf("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return []string{line[1:]}, nil
	case '-':
		return nil, fmt.Errorf("redis: %s", line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return strings.Split(strings.ReplaceAll(string(buf[:n]), "\r\n", "\n"), "\n"), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return nil, err
		}
		var out []string
		for range max(n, 0) {
			part, err := readReply(r)
			if err != nil {
				return nil, err
			}
			out = append(out, part...)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unexpected reply %q", line)
}

package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/bytesize"
	"github.com/healproxy/healproxy/internal/proctest"
	"github.com/healproxy/healproxy/plugins"
)

// modelWith makes a Model of mc with opts (quiet) and closes it at the
// end of the test, then checks that every process it ran is gone. (That
// none of the suite's plugin processes, hog children included, is left
// at all is checked once all tests have run: see TestMain.)
func modelWith(t *testing.T, mc config.Model, opts Options) *Model {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if mc.Name == "" {
		mc.Name = mc.Key
	}
	if mc.Timeout == 0 {
		mc.Timeout = 5 * time.Second
	}
	var mu sync.Mutex
	var pids []int
	hook := opts.Hooks.Reinitialised
	opts.Hooks.Reinitialised = func(key string, r Result) {
		mu.Lock()
		pids = append(pids, r.Pid, r.OldPid)
		mu.Unlock()
		if hook != nil {
			hook(key, r)
		}
	}
	m := New(mc, testSettings, opts)
	t.Cleanup(func() {
		mu.Lock()
		pids = append(pids, m.State().Pid)
		mu.Unlock()
		m.Close()
		for _, pid := range pids {
			if pid == 0 {
				continue
			}
			if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
				t.Errorf("model %s: process %d still exists after Close", m.Key, pid)
			}
		}
	})
	return m
}

// pluginProcesses lists the processes other than this one that run this
// test binary (plugins and their hog children), from /proc.
func pluginProcesses() []string {
	self, _ := os.Readlink("/proc/self/exe")
	var out []string
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, _ := strconv.Atoi(filepath.Base(d))
		if pid == os.Getpid() {
			continue
		}
		if exe, err := os.Readlink(d + "/exe"); err == nil && exe == self {
			cmd, _ := os.ReadFile(d + "/cmdline")
			out = append(out, fmt.Sprintf("pid %d: %q", pid, strings.ReplaceAll(string(cmd), "\x00", " ")))
		}
	}
	return out
}

// leftoverPlugins waits up to 5s for every plugin process of the suite
// (and every child of one) to be gone, and returns those that are not.
func leftoverPlugins() []string {
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := pluginProcesses()
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
}

// results collects what Hooks.Reinitialised reports.
type results struct {
	mu  sync.Mutex
	all []Result
}

func (r *results) hooks() Hooks {
	return Hooks{Reinitialised: func(_ string, res Result) {
		r.mu.Lock()
		r.all = append(r.all, res)
		r.mu.Unlock()
	}}
}

func (r *results) list() []Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Result(nil), r.all...)
}

// load is a bounded stream of predicts from several callers, as the proxy
// makes them: each with the model's timeout, counted as ok or failed.
type load struct {
	ok, failed, unwarmed atomic.Int64
	mu                   sync.Mutex
	errs                 []string
	stop                 chan struct{}
	wg                   sync.WaitGroup
}

// maxLoad bounds every load in this file, whatever the test waits for.
const maxLoad = 20 * time.Second

func startLoad(m *Model, callers int, wantLabel string) *load {
	l := &load{stop: make(chan struct{})}
	deadline := time.Now().Add(maxLoad)
	for range callers {
		l.wg.Go(func() {
			for time.Now().Before(deadline) {
				select {
				case <-l.stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), m.Config().Timeout)
				out, err := m.Predict(ctx, []string{"btc to the moon"})
				cancel()
				switch {
				case err != nil:
					if l.failed.Add(1) <= 5 {
						l.mu.Lock()
						l.errs = append(l.errs, err.Error())
						l.mu.Unlock()
					}
					time.Sleep(time.Millisecond) // a client's pause after an error, not a spin
				case wantLabel != "" && out[0][0].Label != wantLabel:
					l.unwarmed.Add(1)
				default:
					l.ok.Add(1)
				}
				time.Sleep(200 * time.Microsecond) // leave the CPUs some room for the plugin starts
			}
		})
	}
	return l
}

func (l *load) end() {
	close(l.stop)
	l.wg.Wait()
}

// more waits until n more calls have succeeded.
func (l *load) more(t *testing.T, n int64) {
	t.Helper()
	want := l.ok.Load() + n
	waitFor(t, fmt.Sprintf("%d more calls", n), func() bool { return l.ok.Load() >= want })
}

// healUnderLoad: while 4 callers predict continuously, three self-heals
// of the live model and one max_requests recycle fail no call, and every
// answer comes from a warmed-up process. The same run with warm
// replacement off (Options.ColdOnly, the behaviour before it) fails calls:
// the harness can see them.
func TestHealUnderLoadLosesNothing(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		cold  bool
		heals int
	}{
		{"warm", false, 3},
		{"cold replacement fails calls", true, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := &results{}
			mc := config.Model{Key: "sent", Plugin: "first", Warmup: []string{"warm me"}, Timeout: 5 * time.Second,
				Health: config.Health{ReinitCooldown: 0}}
			m := modelWith(t, mc, Options{Hooks: rec.hooks(), ColdOnly: tt.cold, LimitInterval: 20 * time.Millisecond})
			m.Start()
			running(t, m)
			l := startLoad(m, 4, "first:warm me")
			l.more(t, 100)
			pids := map[int]bool{m.Process().Pid(): true}
			for i := range tt.heals {
				res := m.Reinit(context.Background(), WhySelfHeal)
				if res.Status != StatusSuccess || pids[res.Pid] {
					t.Fatalf("heal %d: %+v; want success with a new pid", i+1, res)
				}
				pids[res.Pid] = true
				l.more(t, 100)
			}
			if !tt.cold {
				// max_requests: the running process has served some calls;
				// allow it 200 more.
				mc.MaxRequests = m.State().Calls + 200
				m.SetConfig(mc)
				waitFor(t, "the max_requests recycle", func() bool {
					r := rec.list()
					return len(r) >= tt.heals+1 && r[tt.heals].Why == WhyRecycle
				})
				// The successor may reach the limit too before this line,
				// which is one more warm recycle.
				mc.MaxRequests = 0
				m.SetConfig(mc)
				l.more(t, 100)
			}
			l.end()
			waitFor(t, "the last reinit to end", func() bool {
				m.mu.Lock()
				defer m.mu.Unlock()
				return m.reinitting == nil
			})
			t.Logf("%d calls ok, %d failed, %d unwarmed; reinits: %+v", l.ok.Load(), l.failed.Load(), l.unwarmed.Load(), rec.list())
			if l.unwarmed.Load() != 0 {
				t.Errorf("%d calls were answered by a process before its warm-up", l.unwarmed.Load())
			}
			if tt.cold {
				if l.failed.Load() == 0 {
					t.Error("cold replacement under load failed no call; the harness cannot see a gap")
				}
				return
			}
			if n := l.failed.Load(); n != 0 {
				t.Errorf("%d calls failed during warm heals; want 0 (first errors: %q)", n, l.errs)
			}
			all := rec.list()
			if len(all) < tt.heals+1 {
				t.Fatalf("reinits %+v; want at least %d", all, tt.heals+1)
			}
			for i, r := range all {
				if r.Status != StatusSuccess || r.Mode != ModeWarm || r.OldPid == 0 || r.Switch <= 0 {
					t.Errorf("reinit %d: %+v; want a successful warm switch from a running process", i+1, r)
				}
			}
			if r := all[tt.heals]; !strings.HasPrefix(r.Reason, "max_requests: ") || !strings.Contains(r.Message, r.Reason) {
				t.Errorf("recycle reason %q, message %q; want the max_requests figure", r.Reason, r.Message)
			}
			if st := m.State(); st.Last.Why != WhyRecycle || st.Restarts != len(all) {
				t.Errorf("state after the recycle: %+v; want the last reinit a recycle, restarts %d", st, len(all))
			}
		})
	}
}

// TestWarmReinitDrainsPinnedCall: a call pinned to the old process keeps
// it running after the switch and succeeds on it; the old process stops
// once the call is done, not before, or once the model's timeout has
// passed.
func TestWarmReinitDrainsPinnedCall(t *testing.T) {
	t.Parallel()
	m := modelWith(t, config.Model{Key: "sent", Plugin: "sentiment"}, Options{})
	m.Start()
	old := running(t, m)
	p, done, err := m.Pin()
	if err != nil || p != old {
		t.Fatalf("Pin = %v, %v; want the running process", p, err)
	}
	resc := make(chan Result, 1)
	go func() { resc <- m.Reinit(context.Background(), WhySelfHeal) }()
	waitFor(t, "the switch", func() bool { np := m.Process(); return np != nil && np != old })
	select {
	case <-old.Done():
		t.Fatal("the old process was stopped with a call pinned to it")
	case res := <-resc:
		t.Fatalf("Reinit returned %+v with a call still pinned", res)
	default:
	}
	if out, err := p.Model().Predict(context.Background(), []string{"to the moon"}); err != nil || len(out) != 1 {
		t.Errorf("a pinned call after the switch: %v, %v; want an answer from the old process", out, err)
	}
	done(nil)
	res := <-resc
	wantGone(t, old)
	if res.Status != StatusSuccess || res.Mode != ModeWarm || res.OldPid != old.Pid() || res.Drain <= 0 {
		t.Errorf("Reinit = %+v; want warm success that drained pid %d", res, old.Pid())
	}
	done(nil) // a second call of done does nothing
	if in := m.cur.Load(); in.inflight.Load() != 0 {
		t.Errorf("new process has %d calls in flight; want 0", in.inflight.Load())
	}

	// A call that never ends holds the old process no longer than the
	// model's timeout.
	m.SetConfig(config.Model{Key: "sent", Name: "sent", Plugin: "sentiment", Timeout: 300 * time.Millisecond})
	old = m.Process()
	_, done, err = m.Pin()
	if err != nil {
		t.Fatal(err)
	}
	defer done(nil)
	res = m.Reinit(context.Background(), WhySelfHeal)
	wantGone(t, old)
	if res.Status != StatusSuccess || res.Drain < 300*time.Millisecond || res.Drain > 5*time.Second ||
		!strings.Contains(res.Message, "1 call(s) still in flight") {
		t.Errorf("Reinit = %+v; want a drain cut at the 300ms timeout", res)
	}
}

// TestSIGKILLedModelIsReplacedCold: a killed process is replaced cold by
// auto_reinit; calls in the gap fail (the proxy's fallback answers them),
// and calls succeed again after.
func TestSIGKILLedModelIsReplacedCold(t *testing.T) {
	t.Parallel()
	rec := &results{}
	m := modelWith(t, config.Model{Key: "sent", Plugin: "sentiment",
		Health: config.Health{AutoReinit: true}}, Options{Hooks: rec.hooks()})
	m.Start()
	old := running(t, m)
	l := startLoad(m, 4, "")
	l.more(t, 50)
	if err := syscall.Kill(old.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the cold replacement", func() bool { return len(rec.list()) == 1 })
	l.more(t, 50)
	l.end()
	r := rec.list()[0]
	if r.Status != StatusSuccess || r.Mode != ModeCold || r.Why != WhyAutoReinit || !strings.Contains(r.Message, "cold") {
		t.Errorf("reinit after SIGKILL: %+v; want a cold auto-reinit", r)
	}
	if l.failed.Load() == 0 {
		t.Error("no call failed while the killed process was replaced; want the gap the fallback covers")
	}
	for _, e := range l.errs {
		if !strings.Contains(e, "not loaded") && !strings.Contains(e, "unavailable") {
			t.Errorf("a call failed with %q; want not loaded or plugin unavailable", e)
		}
	}
}

// TestHungModelIsReplacedCold: a process that does not answer its health
// check within the bound (SIGSTOPped) is stopped first, not drained.
func TestHungModelIsReplacedCold(t *testing.T) {
	t.Parallel()
	m := modelWith(t, config.Model{Key: "sent", Plugin: "sentiment"}, Options{})
	m.hung = 300 * time.Millisecond // 2s in production
	m.Start()
	old := running(t, m)
	if err := syscall.Kill(old.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	proctest.WaitStopped(t, old.Pid())
	res := m.Reinit(context.Background(), WhySelfHeal)
	wantGone(t, old)
	if res.Status != StatusSuccess || res.Mode != ModeCold || !strings.Contains(res.Message, "health check") {
		t.Errorf("reinit of a hung process: %+v; want cold, naming the failed health check", res)
	}
}

// TestWarmupBeforeTraffic: a new process answers its warm-up samples
// before any call, at the first start and after a reinit; a process that
// fails its warm-up is not installed, and a warm reinit then leaves the
// running one serving.
func TestWarmupBeforeTraffic(t *testing.T) {
	t.Parallel()
	mc := config.Model{Key: "first", Plugin: "first", Warmup: []string{"sample text", "another"}, Timeout: 5 * time.Second}
	m := modelWith(t, mc, Options{})
	m.Start()
	running(t, m)
	for i := range 2 {
		out, err := m.Predict(context.Background(), []string{"real"})
		if err != nil || out[0][0].Label != "first:sample text" || out[0][0].Score != 2 {
			t.Errorf("start %d: first real call got %v, %v; want label first:sample text, second predict", i, out, err)
		}
		if i == 0 {
			if res := m.Reinit(context.Background(), WhySelfHeal); res.Status != StatusSuccess {
				t.Fatalf("reinit: %+v", res)
			}
		}
	}

	serving := m.Process()
	mc.Warmup = []string{"fail"}
	m.SetConfig(mc)
	res := m.Reinit(context.Background(), WhySelfHeal)
	if res.Status != StatusFailed || !strings.Contains(res.Message, "warm-up") || !strings.Contains(res.Message, "keeps serving") {
		t.Errorf("reinit with a failing warm-up: %+v; want failed, the old process serving", res)
	}
	if m.Process() != serving || m.Health.Status() != breaker.Healthy {
		t.Error("a failed warm reinit replaced or held the serving process")
	}

	bad := modelWith(t, config.Model{Key: "bad", Plugin: "first", Warmup: []string{"fail"}}, Options{})
	bad.Start()
	waitFor(t, "the failed start", func() bool { return bad.Health.Status() == breaker.Unavailable })
	if bad.Process() != nil || !strings.Contains(bad.Health.Snapshot().Reason, "warm-up") {
		t.Errorf("a start whose warm-up failed: loaded %v, reason %q", bad.Process() != nil, bad.Health.Snapshot().Reason)
	}
}

// TestMaxMemoryRecycle: a plugin whose child process takes memory past
// max_memory is recycled warm, with the figure in the reason; the child
// goes with it. TreeRSS counts the child.
func TestMaxMemoryRecycle(t *testing.T) {
	t.Parallel()
	rec := &results{}
	mc := config.Model{Key: "alloc", Plugin: "alloc", Timeout: 5 * time.Second}
	m := modelWith(t, mc, Options{Hooks: rec.hooks(), LimitInterval: time.Hour}) // checked by hand
	m.Start()
	old := running(t, m)
	base, err := TreeRSS(old.Pid())
	if err != nil {
		t.Fatal(err)
	}
	mc.MaxMemory = base + 64<<20
	m.SetConfig(mc)
	if _, ok := m.checkLimits(); ok {
		t.Fatalf("a plugin at %s was recycled under max_memory %s", bytesize.Format(base), bytesize.Format(mc.MaxMemory))
	}
	// The plugin itself stays small: only counting its child passes the
	// limit.
	if _, err := m.Predict(context.Background(), []string{"hog 128"}); err != nil {
		t.Fatal(err)
	}
	after, err := TreeRSS(old.Pid())
	if err != nil {
		t.Fatal(err)
	}
	own, _ := rss(old.Pid())
	if after-base < 128<<20 || after-own < 128<<20 {
		t.Errorf("tree RSS %s before the hog, %s after, the plugin's own %s; want the hog's 128MiB counted",
			bytesize.Format(base), bytesize.Format(after), bytesize.Format(own))
	}
	kids, _ := descendants(old.Pid())
	scanned, _ := descendantsByScan(old.Pid())
	if len(kids) != 1 || len(scanned) != 1 || kids[0] != scanned[0] {
		t.Errorf("descendants %v, by scan %v; want the one hog", kids, scanned)
	}
	if _, err := TreeRSS(1 << 30); err == nil {
		t.Error("TreeRSS of a pid that does not exist: no error")
	}
	if _, ok := m.checkLimits(); !ok {
		t.Fatal("no recycle past max_memory")
	}
	r := rec.list()[0]
	if r.Status != StatusSuccess || r.Mode != ModeWarm || r.Why != WhyRecycle || r.OldPid != old.Pid() ||
		!strings.HasPrefix(r.Reason, "max_memory: resident memory ") || !strings.Contains(r.Reason, "(limit "+bytesize.Format(mc.MaxMemory)+")") {
		t.Errorf("recycle: %+v; want a warm recycle naming max_memory and its limit", r)
	}
	wantGone(t, old)
}

// TestLatencyRecycle: with latency_recycle = 3, a p95 twice the one after
// start is tolerated and four times it recycles. The clock is fake.
func TestLatencyRecycle(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Unix(1_000_000, 0)}
	mc := config.Model{Key: "sent", Plugin: "sentiment", LatencyRecycle: 3}
	m := modelWith(t, mc, Options{Now: clk.now, LimitInterval: time.Hour})
	m.Start()
	running(t, m)
	calls := func(n int, d time.Duration) {
		for range n {
			_, done, err := m.Pin()
			if err != nil {
				t.Fatal(err)
			}
			clk.advance(d)
			done(nil)
		}
	}
	calls(minSamples, 10*time.Millisecond) // the baseline, within a minute of the start
	_, done, _ := m.Pin()
	done(errors.New("failed calls are not timed"))
	clk.advance(baselineWindow)
	calls(minSamples, 20*time.Millisecond)
	if res, ok := m.checkLimits(); ok {
		t.Fatalf("p95 2× the baseline recycled: %+v", res)
	}
	clk.advance(recentWindow + time.Second) // those calls age out
	calls(minSamples, 40*time.Millisecond)
	res, ok := m.checkLimits()
	if !ok || res.Status != StatusSuccess || res.Mode != ModeWarm ||
		res.Reason != "latency_recycle: p95 40ms over the last 5m0s is 4.0× the p95 of 10ms after start (limit 3×)" {
		t.Errorf("p95 4× the baseline: %+v, %v; want a warm recycle naming the figures", res, ok)
	}
}

// TestRecycleCooldown: a limit passed within reinit_cooldown of the last
// reinit waits for it.
func TestRecycleCooldown(t *testing.T) {
	t.Parallel()
	mc := config.Model{Key: "sent", Plugin: "sentiment", MaxRequests: 1, Health: config.Health{ReinitCooldown: time.Hour}}
	m := modelWith(t, mc, Options{LimitInterval: time.Hour})
	m.Start()
	running(t, m)
	if _, err := m.Predict(context.Background(), []string{"x"}); err != nil {
		t.Fatal(err)
	}
	if res, ok := m.checkLimits(); !ok || res.Status != StatusSuccess || res.Reason != "max_requests: 1 calls served (limit 1)" {
		t.Fatalf("first recycle: %+v, %v", res, ok)
	}
	if _, err := m.Predict(context.Background(), []string{"x"}); err != nil {
		t.Fatal(err)
	}
	if res, ok := m.checkLimits(); !ok || res.Status != StatusCooldown || res.CooldownRemaining < 59*time.Minute {
		t.Errorf("second recycle within reinit_cooldown: %+v, %v; want cooldown", res, ok)
	}
}

// TestLimiterSlots: with max_concurrent_reinit 2 shared by two live
// models, their warm reinits (two processes each) run one at a time: never
// more than one extra process. With 1, a reinit is cold. It counts this
// binary's children, so it does not run in parallel.
func TestLimiterSlots(t *testing.T) {
	lim := NewLimiter(2)
	a := modelWith(t, config.Model{Key: "a", Plugin: "sentiment"}, Options{Limiter: lim})
	b := modelWith(t, config.Model{Key: "b", Plugin: "sentiment"}, Options{Limiter: lim})
	a.Start()
	b.Start()
	running(t, a)
	running(t, b)
	for _, m := range []*Model{a, b} {
		for range 5 {
			m.Health.Fail(&breaker.Failure{Kind: breaker.KindError, Message: "test"})
		}
		if m.Health.Status() != breaker.Unavailable {
			t.Fatalf("%s: %s; want unavailable", m.Key, m.Health.Status())
		}
	}
	stop := make(chan struct{})
	var most atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			kids, _ := descendants(os.Getpid())
			most.Store(max(most.Load(), int64(len(kids))))
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond): // poll interval
			}
		}
	})
	res := HealAll(context.Background(), []*Model{a, b}, 5)
	close(stop)
	wg.Wait()
	for _, r := range res {
		if r.Status != StatusSuccess || r.Mode != ModeWarm {
			t.Errorf("HealAll: %+v; want warm success", r)
		}
	}
	if n := most.Load(); n > 3 {
		t.Errorf("%d plugin processes at once; want at most 3 (two models, one reinit's new process)", n)
	}
	if lim.InUse() != 0 {
		t.Errorf("%d slots held after the reinits", lim.InUse())
	}

	lim.SetLimit(1)
	if r := a.Reinit(context.Background(), WhySelfHeal); r.Mode != ModeCold || !strings.Contains(r.Message, "max_concurrent_reinit is 1") {
		t.Errorf("reinit with one slot: %+v; want cold, saying why", r)
	}
}

// TestLimiter: slots are waited for, the wait gives up with its context,
// and a grown limit wakes waiters.
func TestLimiter(t *testing.T) {
	l := NewLimiter(2)
	if n, err := l.acquire(context.Background(), 2); n != 2 || err != nil {
		t.Fatalf("acquire 2 of 2: %d, %v", n, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := l.acquire(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("acquire with none free: %v; want the context's error", err)
	}
	got := make(chan int)
	go func() { n, _ := l.acquire(context.Background(), 1); got <- n }()
	l.SetLimit(3)
	if n := <-got; n != 1 || l.InUse() != 3 {
		t.Errorf("after SetLimit(3): took %d, in use %d; want 1 and 3", n, l.InUse())
	}
	l.release(2)
	l.release(1)
	if n, _ := l.acquire(context.Background(), 5); n != 3 {
		t.Errorf("acquire above the limit took %d; want the limit, 3", n)
	}
}

// TestPinNotLoaded: without a process Pin and Predict say so.
func TestPinNotLoaded(t *testing.T) {
	m := modelWith(t, config.Model{Key: "x", Plugin: "no-such-plugin"}, Options{})
	if _, done, err := m.Pin(); !errors.Is(err, ErrNotLoaded) || done == nil {
		t.Errorf("Pin before Start: %v; want ErrNotLoaded and a done", err)
	}
	if _, err := m.Predict(context.Background(), []string{"x"}); !errors.Is(err, ErrNotLoaded) {
		t.Errorf("Predict before Start: %v; want ErrNotLoaded", err)
	}
	var _ *plugins.Process // the pinned type
}

func TestP95(t *testing.T) {
	ds := func(ms ...int) []time.Duration {
		out := make([]time.Duration, len(ms))
		for i, m := range ms {
			out[i] = time.Duration(m) * time.Millisecond
		}
		return out
	}
	for _, tt := range []struct {
		in   []time.Duration
		want time.Duration
	}{
		{ds(5), 5 * time.Millisecond},
		{ds(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 100), 19 * time.Millisecond},
		{ds(100, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20), 20 * time.Millisecond},
		{ds(100, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 99), 99 * time.Millisecond},
	} {
		if got := p95(tt.in); got != tt.want {
			t.Errorf("p95 of %d samples = %s; want %s", len(tt.in), got, tt.want)
		}
	}
}

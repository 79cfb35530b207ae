package plugins

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// hclogAdapter routes go-plugin's own hclog output into a slog.Logger, tagged
// with the model key. It keeps go-plugin quiet on success: messages below
// Warn are dropped, and while the host is killing the process on purpose
// (quiet set) the warnings that causes are demoted to Debug.
type hclogAdapter struct {
	l      *slog.Logger
	name   string
	level  *atomic.Int32 // hclog.Level, shared with loggers derived by With
	args   []interface{}
	quiet  *atomic.Bool
	silent string // Named(silent) returns a disabled logger (see newHCLogAdapter)
}

// newHCLogAdapter returns the go-plugin logger for one plugin process.
// silent is the name go-plugin gives the logger that re-logs the plugin's
// stderr (filepath.Base of the command path): that output is logged by
// stderrLogger instead, so it is turned off here to avoid logging it twice.
func newHCLogAdapter(l *slog.Logger, silent string, quiet *atomic.Bool) *hclogAdapter {
	lvl := new(atomic.Int32)
	lvl.Store(int32(hclog.Warn))
	return &hclogAdapter{l: l, name: "go-plugin", level: lvl, quiet: quiet, silent: silent}
}

func (a *hclogAdapter) Log(level hclog.Level, msg string, args ...interface{}) {
	if level == hclog.Off || level < hclog.Level(a.level.Load()) {
		return
	}
	sl := slogLevel(level)
	// Exits are reported by Process itself, with the model key and reason;
	// during a deliberate kill, go-plugin's complaints are expected.
	if msg == "plugin process exited" || a.quiet.Load() {
		sl = slog.LevelDebug
	}
	ctx := context.Background()
	if !a.l.Enabled(ctx, sl) {
		return
	}
	attrs := make([]any, 0, len(a.args)+len(args)+2)
	attrs = append(attrs, "logger", a.name)
	attrs = append(attrs, a.args...)
	attrs = append(attrs, args...)
	a.l.Log(ctx, sl, msg, attrs...)
}

func slogLevel(level hclog.Level) slog.Level {
	switch {
	case level <= hclog.Debug:
		return slog.LevelDebug
	case level == hclog.Info:
		return slog.LevelInfo
	case level == hclog.Warn:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

func (a *hclogAdapter) Trace(msg string, args ...interface{}) { a.Log(hclog.Trace, msg, args...) }
func (a *hclogAdapter) Debug(msg string, args ...interface{}) { a.Log(hclog.Debug, msg, args...) }
func (a *hclogAdapter) Info(msg string, args ...interface{})  { a.Log(hclog.Info, msg, args...) }
func (a *hclogAdapter) Warn(msg string, args ...interface{})  { a.Log(hclog.Warn, msg, args...) }
func (a *hclogAdapter) Error(msg string, args ...interface{}) { a.Log(hclog.Error, msg, args...) }

func (a *hclogAdapter) IsTrace() bool { return hclog.Level(a.level.Load()) <= hclog.Trace }
func (a *hclogAdapter) IsDebug() bool { return hclog.Level(a.level.Load()) <= hclog.Debug }
func (a *hclogAdapter) IsInfo() bool  { return hclog.Level(a.level.Load()) <= hclog.Info }
func (a *hclogAdapter) IsWarn() bool  { return hclog.Level(a.level.Load()) <= hclog.Warn }
func (a *hclogAdapter) IsError() bool { return hclog.Level(a.level.Load()) <= hclog.Error }

func (a *hclogAdapter) ImpliedArgs() []interface{} { return a.args }

func (a *hclogAdapter) With(args ...interface{}) hclog.Logger {
	c := *a
	c.args = append(append([]interface{}{}, a.args...), args...)
	return &c
}

func (a *hclogAdapter) Name() string { return a.name }

func (a *hclogAdapter) Named(name string) hclog.Logger {
	c := *a
	if name == a.silent {
		c.level = new(atomic.Int32)
		c.level.Store(int32(hclog.Off))
	}
	c.name = a.name + "." + name
	return &c
}

func (a *hclogAdapter) ResetNamed(name string) hclog.Logger {
	c := *a
	c.name = name
	return &c
}

func (a *hclogAdapter) SetLevel(level hclog.Level) { a.level.Store(int32(level)) }
func (a *hclogAdapter) GetLevel() hclog.Level      { return hclog.Level(a.level.Load()) }

func (a *hclogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(a.StandardWriter(opts), "", 0)
}

func (a *hclogAdapter) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	level := hclog.Info
	if opts != nil && opts.ForceLevel != hclog.NoLevel {
		level = opts.ForceLevel
	}
	return &lineWriter{line: func(b []byte) { a.Log(level, string(b)) }}
}

// stderrLogger logs a plugin's output streams, one record per line, under
// the model key. hclog JSON lines (what Serve's logger writes) keep their
// level and fields and are dropped below Warn; other lines are logged at
// Info, or at Error from a Go panic or fatal error on. It keeps the last
// lines for error messages when the handshake fails.
type stderrLogger struct {
	l      *slog.Logger
	stream string

	mu        sync.Mutex
	inPanic   bool
	panicLine string
	tail      []string
}

const stderrTailLines = 8

func (s *stderrLogger) writer() io.Writer { return &lineWriter{line: s.logLine} }

func (s *stderrLogger) logLine(b []byte) {
	line := strings.TrimRight(string(b), "\r")
	if strings.TrimSpace(line) == "" {
		return
	}
	s.mu.Lock()
	if len(s.tail) == stderrTailLines {
		s.tail = append(s.tail[:0], s.tail[1:]...)
	}
	s.tail = append(s.tail, line)
	if !s.inPanic && (strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ")) {
		s.inPanic = true
		s.panicLine = line
	}
	inPanic := s.inPanic
	s.mu.Unlock()

	ctx := context.Background()
	if level, msg, attrs, ok := parseHCLogJSON(b); ok {
		if level < slog.LevelWarn || !s.l.Enabled(ctx, level) {
			return
		}
		s.l.Log(ctx, level, msg, append([]any{"stream", s.stream}, attrs...)...)
		return
	}
	level := slog.LevelInfo
	if inPanic {
		level = slog.LevelError
	}
	s.l.Log(ctx, level, "plugin output", "stream", s.stream, "line", line)
}

// Tail returns the last lines seen, joined.
func (s *stderrLogger) Tail() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.tail, "\n")
}

// LastWords returns the line that best explains a crash: the first line of
// a Go panic or fatal error if there was one, else the last line seen.
func (s *stderrLogger) LastWords() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.panicLine != "" {
		return s.panicLine
	}
	if len(s.tail) == 0 {
		return ""
	}
	return s.tail[len(s.tail)-1]
}

// parseHCLogJSON decodes one hclog JSON line ({"@level":…,"@message":…,…}).
func parseHCLogJSON(b []byte) (slog.Level, string, []any, bool) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return 0, "", nil, false
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return 0, "", nil, false
	}
	lvl, ok := m["@level"].(string)
	if !ok {
		return 0, "", nil, false
	}
	msg, _ := m["@message"].(string)
	var attrs []any
	for k, v := range m {
		switch k {
		case "@level", "@message", "@timestamp":
		case "@module":
			attrs = append(attrs, "logger", v)
		default:
			attrs = append(attrs, k, fmt.Sprint(v))
		}
	}
	return slogLevel(hclog.LevelFromString(lvl)), msg, attrs, true
}

// lineWriter calls line for each complete '\n'-terminated line written to
// it (without the newline). Lines longer than 64 KiB are cut. Safe for
// concurrent use.
type lineWriter struct {
	mu   sync.Mutex
	buf  []byte
	line func([]byte)
}

const maxLine = 64 << 10

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.buf = append(w.buf, p...)
			if len(w.buf) > maxLine {
				w.line(w.buf[:maxLine])
				w.buf = w.buf[:0]
			}
			break
		}
		w.buf = append(w.buf, p[:i]...)
		w.line(w.buf)
		w.buf = w.buf[:0]
		p = p[i+1:]
	}
	return n, nil
}

// Interface guards.
var _ hclog.Logger = (*hclogAdapter)(nil)

package plugins

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// fakeModel is a Model whose behaviour each test sets.
type fakeModel struct {
	predict func(ctx context.Context, inputs []string) ([][]LabelScore, error)
	info    Info
	health  error
}

func (m *fakeModel) Predict(ctx context.Context, inputs []string) ([][]LabelScore, error) {
	return m.predict(ctx, inputs)
}
func (m *fakeModel) Info(context.Context) (Info, error) { return m.info, nil }
func (m *fakeModel) Health(context.Context) error       { return m.health }

// inProcess serves impl over an in-process gRPC connection and returns the
// host-side Model.
func inProcess(t *testing.T, impl Model) Model {
	t.Helper()
	client, _ := plugin.TestPluginGRPCConn(t, false, plugin.PluginSet{PluginName: &ModelPlugin{Impl: impl}})
	// Close asks the server to stop (go-plugin's controller); stopping it
	// here as well races inside go-plugin.
	t.Cleanup(func() { _ = client.Close() })
	raw, err := client.Dispense(PluginName)
	if err != nil {
		t.Fatalf("Dispense: %v", err)
	}
	m, ok := raw.(Model)
	if !ok {
		t.Fatalf("Dispense returned %T; want Model", raw)
	}
	return m
}

func TestGRPCRoundTrip(t *testing.T) {
	var gotInputs []string
	impl := &fakeModel{
		predict: func(_ context.Context, inputs []string) ([][]LabelScore, error) {
			gotInputs = inputs
			out := make([][]LabelScore, len(inputs))
			for i := range inputs {
				// Deliberately not best first: the client sorts.
				out[i] = []LabelScore{{"low", 0.1}, {"high", 0.7}, {"mid", 0.2}}
			}
			return out, nil
		},
		info: Info{Name: "fake", Version: "9", Labels: []string{"low", "mid", "high"}},
	}
	m := inProcess(t, impl)
	ctx := t.Context()

	preds, err := m.Predict(ctx, []string{"a", "b"})
	if err != nil {
		t.Fatalf("Predict: %v", err)
	}
	if g, e := strings.Join(gotInputs, ","), "a,b"; g != e {
		t.Errorf("server got inputs %q; want %q", g, e)
	}
	if len(preds) != 2 {
		t.Fatalf("got %d predictions; want 2", len(preds))
	}
	for i, p := range preds {
		if len(p) != 3 || p[0].Label != "high" || p[1].Label != "mid" || p[2].Label != "low" || p[0].Score != 0.7 {
			t.Errorf("prediction %d = %v; want high, mid, low (best first)", i, p)
		}
	}

	info, err := m.Info(ctx)
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	if info.Name != "fake" || info.Version != "9" || strings.Join(info.Labels, ",") != "low,mid,high" {
		t.Errorf("Info = %+v; want fake/9/[low mid high]", info)
	}
	if err := m.Health(ctx); err != nil {
		t.Errorf("Health: %v", err)
	}
}

func TestGRPCWrongPredictionCount(t *testing.T) {
	m := inProcess(t, &fakeModel{predict: func(context.Context, []string) ([][]LabelScore, error) {
		return [][]LabelScore{{{"x", 1}}}, nil
	}})
	_, err := m.Predict(t.Context(), []string{"a", "b", "c"})
	if !errors.Is(err, ErrBadResponse) {
		t.Fatalf("got %v; want ErrBadResponse", err)
	}
	if !strings.Contains(err.Error(), "1 predictions for 3 inputs") {
		t.Errorf("got %q; want it to give both counts", err)
	}
}

func TestGRPCErrors(t *testing.T) {
	block := func(ctx context.Context, _ []string) ([][]LabelScore, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	tests := []struct {
		name    string
		predict func(context.Context, []string) ([][]LabelScore, error)
		timeout time.Duration
		want    error  // errors.Is target, or nil
		wantMsg string // substring
	}{
		{name: "plugin error keeps its message",
			predict: func(context.Context, []string) ([][]LabelScore, error) { return nil, errors.New("tokenizer exploded") },
			wantMsg: "tokenizer exploded"},
		{name: "caller deadline", predict: block, timeout: 50 * time.Millisecond, want: context.DeadlineExceeded},
		{name: "plugin gives up on its own deadline",
			predict: func(context.Context, []string) ([][]LabelScore, error) {
				return nil, context.DeadlineExceeded
			},
			want: context.DeadlineExceeded},
		{name: "plugin reports unavailable",
			predict: func(context.Context, []string) ([][]LabelScore, error) {
				return nil, status.Error(codes.Unavailable, "backend down")
			},
			want: ErrPluginUnavailable, wantMsg: "backend down"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := inProcess(t, &fakeModel{predict: tt.predict})
			ctx := t.Context()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			_, err := m.Predict(ctx, []string{"x"})
			if err == nil {
				t.Fatal("got nil error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("got %v; want errors.Is %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("got %q; want it to contain %q", err, tt.wantMsg)
			}
		})
	}
}

func TestGRPCCallerCancel(t *testing.T) {
	started := make(chan struct{})
	m := inProcess(t, &fakeModel{predict: func(ctx context.Context, _ []string) ([][]LabelScore, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	}})
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-started
		cancel()
	}()
	_, err := m.Predict(ctx, []string{"x"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v; want context.Canceled", err)
	}
}

func TestGRPCUnhealthy(t *testing.T) {
	m := inProcess(t, &fakeModel{health: errors.New("warming up")})
	err := m.Health(t.Context())
	if !errors.Is(err, ErrUnhealthy) || !strings.Contains(err.Error(), "warming up") {
		t.Fatalf("got %v; want ErrUnhealthy with the plugin's message", err)
	}
}

func TestTranslateError(t *testing.T) {
	live := context.Background()
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()

	tests := []struct {
		name        string
		call, proc  context.Context
		err         error
		want        error
		wantMessage string
	}{
		{"nil", live, live, nil, nil, ""},
		{"unavailable", live, live, status.Error(codes.Unavailable, "EOF"), ErrPluginUnavailable, "EOF"},
		{"process gone wins", live, gone, status.Error(codes.Internal, "x"), ErrPluginUnavailable, "exited"},
		{"deadline code", live, live, status.Error(codes.DeadlineExceeded, "slow"), context.DeadlineExceeded, "timed out"},
		{"caller deadline passed", expired, live, status.Error(codes.Unknown, "x"), context.DeadlineExceeded, ""},
		{"caller cancelled", gone, live, status.Error(codes.Canceled, "x"), context.Canceled, ""},
		{"connection closing", live, live, status.Error(codes.Canceled, "grpc: the client connection is closing"), ErrPluginUnavailable, "closing"},
		{"other code", live, live, status.Error(codes.InvalidArgument, "bad input"), nil, "InvalidArgument"},
		{"not a status", live, live, errors.New("weird"), nil, "weird"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := translateError(tt.call, tt.proc, "Predict", tt.err)
			if tt.err == nil {
				if got != nil {
					t.Fatalf("got %v; want nil", got)
				}
				return
			}
			if tt.want != nil && !errors.Is(got, tt.want) {
				t.Errorf("got %v; want errors.Is %v", got, tt.want)
			}
			for _, s := range []error{ErrPluginUnavailable, context.DeadlineExceeded, context.Canceled} {
				if s != tt.want && errors.Is(got, s) {
					t.Errorf("got %v; unexpectedly errors.Is %v", got, s)
				}
			}
			if !strings.Contains(got.Error(), tt.wantMessage) {
				t.Errorf("got %q; want it to contain %q", got, tt.wantMessage)
			}
		})
	}
}

func TestSentimentBuiltin(t *testing.T) {
	m := inProcess(t, Builtins["sentiment"]())
	preds, err := m.Predict(t.Context(), []string{"BTC breaks out to new all time highs, very bullish 🚀", "exchange hacked, withdrawals halted, bearish", ""})
	if err != nil {
		t.Fatalf("Predict: %v", err)
	}
	for i, want := range []string{"bullish", "bearish", "neutral"} {
		if g := preds[i][0].Label; g != want {
			t.Errorf("input %d: got top label %q; want %q (%v)", i, g, want, preds[i])
		}
	}
}

func TestServeBuiltinUnknown(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	err = ServeBuiltin("no-such-model")
	os.Stdout = stdout
	_ = w.Close()
	out, _ := io.ReadAll(r)
	if err == nil || !strings.Contains(err.Error(), "sentiment") {
		t.Fatalf("got %v; want an error listing the known built-ins", err)
	}
	if len(out) > 0 {
		t.Errorf("ServeBuiltin wrote %q to stdout; want nothing", out)
	}
}

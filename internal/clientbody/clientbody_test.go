package clientbody

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestReadError(t *testing.T) {
	timeout := &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}
	for _, tc := range []struct {
		err  error
		want string // Cause, or "too large"
	}{
		{&http.MaxBytesError{Limit: 16}, "too large"},
		{fmt.Errorf("read: %w", timeout), CauseSlow},
		{io.ErrUnexpectedEOF, CauseAborted},
		{&net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, CauseAborted},
		{net.ErrClosed, CauseAborted},
		{errors.New("malformed chunked encoding"), CauseMalformed},
	} {
		got := ReadError(tc.err)
		if tc.want == "too large" {
			if got != ErrTooLarge {
				t.Errorf("ReadError(%v) = %v; want ErrTooLarge", tc.err, got)
			}
			continue
		}
		var e *Error
		if !errors.As(got, &e) || e.Cause != tc.want {
			t.Errorf("ReadError(%v) = %#v; want cause %s", tc.err, got, tc.want)
		}
	}
	if e := ReadError(errors.New("invalid byte in chunk length")).(*Error); e.Status != http.StatusBadRequest || !strings.Contains(e.Msg, "invalid byte in chunk length") {
		t.Errorf("malformed: %+v; want 400 saying what net/http said", e)
	}
}

func TestLocalResource(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.EADDRNOTAVAIL} {
		if err := (&net.OpError{Op: "dial", Err: os.NewSyscallError("socket", errno)}); !LocalResource(err) {
			t.Errorf("LocalResource(%v) = false; want true", err)
		}
	}
	for _, err := range []error{syscall.ECONNREFUSED, syscall.ECONNRESET, context.DeadlineExceeded, io.EOF} {
		if LocalResource(err) {
			t.Errorf("LocalResource(%v) = true; want false (the upstream's)", err)
		}
	}
}

func TestNilBody(t *testing.T) {
	var b *Body
	if b.Fault() != nil || b.CutSlow() || !b.Watch(context.Background(), context.Background())() {
		t.Error("a nil Body is not blameless")
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	if got := Wrap(httptest.NewRecorder(), r); got != r || Of(got) != nil {
		t.Error("Wrap wrapped a request without a body")
	}
}

// TestBodyStates: a body read to its end, or cut short, tells the right part.
func TestBodyStates(t *testing.T) {
	r := Wrap(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", strings.NewReader("hello")))
	b := Of(r)
	if b == nil || r.Body != b {
		t.Fatal("Wrap: the request's body is not the Body its context holds")
	}
	if _, err := io.ReadAll(r.Body); err != nil || b.Fault() != nil {
		t.Errorf("a body read to its end: %v, fault %v; want none", err, b.Fault())
	}
	r = Wrap(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", io.MultiReader(strings.NewReader("he"), iotest{io.ErrUnexpectedEOF})))
	io.ReadAll(r.Body)
	if got := Of(r).Fault(); got != ErrAborted {
		t.Errorf("a body cut off: fault %v; want ErrAborted", got)
	}
}

type iotest struct{ err error }

func (r iotest) Read([]byte) (int, error) { return 0, r.err }

// TestWatchCutsSlowClient: a real server and a client that sends part of
// its body and stalls; the attempt's end cuts the pending read at once,
// and the client is to blame (ErrSlow), not the upstream.
func TestWatchCutsSlowClient(t *testing.T) {
	type result struct {
		fault   error
		cutSlow bool
		took    time.Duration
	}
	done := make(chan result, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = Wrap(w, r)
		b := Of(r)
		ctx, cancel := context.WithTimeout(r.Context(), 50*time.Millisecond) // the attempt
		defer cancel()
		stop := b.Watch(ctx, r.Context())
		start := time.Now()
		io.ReadAll(r.Body)
		stop()
		done <- result{b.Fault(), b.CutSlow(), time.Since(start)}
	}))
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nfirst bytes")
	select {
	case res := <-done:
		if res.fault != ErrSlow || !res.cutSlow {
			t.Errorf("slow client: fault %v, cut for slowness %v; want ErrSlow, true", res.fault, res.cutSlow)
		}
		if res.took > 5*time.Second {
			t.Errorf("the read waited %v after the attempt ended", res.took)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the pending read of a stalled client was never cut")
	}
}

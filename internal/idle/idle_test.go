package idle

import (
	"errors"
	"io"
	"testing"
	"testing/synctest"
	"time"
)

// drip is a body that sends one byte per interval, forever, until closed;
// after stallAfter bytes (when > 0) it goes silent until closed.
type drip struct {
	interval   time.Duration
	stallAfter int
	sent       int
	closed     chan struct{}
}

func newDrip(interval time.Duration, stallAfter int) *drip {
	return &drip{interval: interval, stallAfter: stallAfter, closed: make(chan struct{})}
}

var errClosed = errors.New("use of closed body")

func (d *drip) Read(p []byte) (int, error) {
	wait := d.interval
	if d.stallAfter > 0 && d.sent >= d.stallAfter {
		wait = time.Hour
	}
	select {
	case <-time.After(wait):
		p[0] = 'x'
		d.sent++
		return 1, nil
	case <-d.closed:
		return 0, errClosed
	}
}

func (d *drip) Close() error {
	select {
	case <-d.closed:
	default:
		close(d.closed)
	}
	return nil
}

func TestSteadyBodyLongerThanIdleIsNotCut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newDrip(10*time.Millisecond, 0)
		b := New(d, 50*time.Millisecond, 0)
		defer b.Close()
		buf := make([]byte, 8)
		start := time.Now()
		for time.Since(start) < 10*time.Second { // 200× the idle timeout
			if _, err := b.Read(buf); err != nil {
				t.Fatalf("after %s: %v", time.Since(start), err)
			}
		}
	})
}

func TestStallEndsWithErrStalled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newDrip(10*time.Millisecond, 3)
		b := New(d, 50*time.Millisecond, 0)
		defer b.Close()
		buf := make([]byte, 8)
		for range 3 {
			if _, err := b.Read(buf); err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now()
		_, err := b.Read(buf)
		if !errors.Is(err, ErrStalled) {
			t.Fatalf("got %v; want ErrStalled", err)
		}
		if took := time.Since(start); took != 50*time.Millisecond {
			t.Errorf("stall noticed after %s; want 50ms", took)
		}
		select {
		case <-d.closed:
		default:
			t.Error("the underlying body was not closed")
		}
		if _, err := b.Read(buf); !errors.Is(err, ErrStalled) {
			t.Errorf("a later Read: got %v; want ErrStalled again", err)
		}
	})
}

func TestSlowReaderIsNotAStall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newDrip(time.Millisecond, 0)
		b := New(d, 50*time.Millisecond, 0)
		defer b.Close()
		buf := make([]byte, 1)
		for range 3 {
			if _, err := b.Read(buf); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second) // the caller is slow, not the body
		}
	})
}

func TestMaxDuration(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newDrip(10*time.Millisecond, 0)
		b := New(d, 50*time.Millisecond, 300*time.Millisecond)
		defer b.Close()
		buf := make([]byte, 8)
		start := time.Now()
		var err error
		for err == nil {
			_, err = b.Read(buf)
		}
		if !errors.Is(err, ErrMaxDuration) {
			t.Fatalf("got %v; want ErrMaxDuration", err)
		}
		if took := time.Since(start); took < 300*time.Millisecond || took > 310*time.Millisecond {
			t.Errorf("ended after %s; want 300ms", took)
		}
	})
}

func TestSetIdleTimeoutAndEOF(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newDrip(100*time.Millisecond, 0)
		b := New(d, time.Second, 0)
		buf := make([]byte, 8)
		if _, err := b.Read(buf); err != nil {
			t.Fatal(err)
		}
		b.SetIdleTimeout(20 * time.Millisecond)
		if _, err := b.Read(buf); !errors.Is(err, ErrStalled) {
			t.Fatalf("got %v; want ErrStalled under the shorter bound", err)
		}
		b.Close()
	})
	// A body that ends reports io.EOF, not a timeout.
	b := New(io.NopCloser(eofReader{}), time.Second, time.Second)
	if _, err := b.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("got %v; want io.EOF", err)
	}
	b.Close()
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

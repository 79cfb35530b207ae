package sse

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// FuzzReader reads any bytes an upstream may send as an event stream, and
// through a Marker: no panic, no event larger than the input, and a
// Marker passes on no more bytes than it read plus one error event, and
// never an unfinished event before that error event.
func FuzzReader(f *testing.F) {
	for _, s := range []string{
		"data: a\n\n", "event: x\ndata: 1\ndata: 2\nid: 3\nretry: 10\n\n", ": comment\n\n",
		"data: [DONE]\n\n", "data: half", "data: a\r\n\r\n", "\n\n\n", "data:\n\n", "field-without-colon\n\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader(bytes.NewReader(b))
		for range len(b) + 2 { // each event consumes at least one byte
			ev, err := r.Next()
			if err != nil {
				break
			}
			if len(ev.Data) > len(b) {
				t.Fatalf("event data of %d bytes from %d bytes of input", len(ev.Data), len(b))
			}
		}

		broken := errors.New("broken")
		m := NewMarker(io.NopCloser(io.MultiReader(bytes.NewReader(b), errReader{broken})), func(error) (string, string) {
			return "cut", "the upstream broke off"
		})
		out, err := io.ReadAll(m)
		if !errors.Is(err, broken) {
			t.Fatalf("Marker ended with %v; want the body's error", err)
		}
		passed, _, found := strings.Cut(string(out), "event: error\n")
		if !found {
			t.Fatalf("Marker passed on %q without an error event", out)
		}
		if len(passed) > len(b) || !strings.HasPrefix(string(b), passed) {
			t.Fatalf("Marker passed on %q before its error event; want a prefix of the input", passed)
		}
	})
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

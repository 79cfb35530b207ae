package sse

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReaderFields(t *testing.T) {
	in := ": keep-alive\n\n" +
		"event: update\nid: 7\nretry: 1500\ndata: line one\ndata:line two\nunknown: x\n\n" +
		"\n\n" + // blank lines between events
		"data: {\"a\":1}\r\n\r\n" +
		"data: last\n\n"
	r := NewReader(strings.NewReader(in))

	ev, err := r.Next()
	if err != nil || !ev.IsComment() || string(ev.Comments[0]) != "keep-alive" {
		t.Fatalf("event 1: got %+v, %v; want the comment keep-alive", ev, err)
	}
	if got := string(ev.Raw); got != ": keep-alive\n\n" {
		t.Errorf("event 1 raw: got %q", got)
	}

	ev, err = r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type != "update" || ev.ID != "7" || !ev.HasID || ev.Retry != 1500 || string(ev.Data) != "line one\nline two" || ev.IsComment() {
		t.Errorf("event 2: got %+v", ev)
	}

	ev, err = r.Next()
	if err != nil || string(ev.Data) != `{"a":1}` || string(ev.Raw) != "data: {\"a\":1}\r\n\r\n" {
		t.Errorf("event 3 (CRLF): got %q raw %q, %v", ev.Data, ev.Raw, err)
	}
	ev, err = r.Next()
	if err != nil || string(ev.Data) != "last" {
		t.Errorf("event 4: got %q, %v", ev.Data, err)
	}
	if _, err = r.Next(); err != io.EOF {
		t.Errorf("end: got %v; want io.EOF", err)
	}
}

func TestReaderIncomplete(t *testing.T) {
	r := NewReader(strings.NewReader("data: one\n\ndata: cut"))
	if ev, err := r.Next(); err != nil || string(ev.Data) != "one" {
		t.Fatalf("got %q, %v", ev.Data, err)
	}
	ev, err := r.Next()
	if !errors.Is(err, ErrIncomplete) || string(ev.Data) != "cut" {
		t.Errorf("got %q, %v; want the partial event and ErrIncomplete", ev.Data, err)
	}
	r = NewReader(strings.NewReader("data: two\n"))
	if _, err := r.Next(); !errors.Is(err, ErrIncomplete) {
		t.Errorf("a last event without its blank line: got %v; want ErrIncomplete", err)
	}
}

type failingReader struct{ data string }

var errBroken = errors.New("connection reset")

func (f *failingReader) Read(p []byte) (int, error) {
	if f.data == "" {
		return 0, errBroken
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestReaderUnderlyingError(t *testing.T) {
	r := NewReader(&failingReader{data: "data: a\n\ndata: b"})
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); !errors.Is(err, errBroken) {
		t.Errorf("got %v; want the reader's own error", err)
	}
}

func TestReaderLineTooLong(t *testing.T) {
	r := NewReader(strings.NewReader("data: " + strings.Repeat("x", 10000) + "\n\n"))
	r.MaxLine = 5000
	if _, err := r.Next(); !errors.Is(err, ErrLineTooLong) {
		t.Errorf("got %v; want ErrLineTooLong", err)
	}
	// Within the bound, a line longer than the read buffer is read whole.
	r = NewReader(strings.NewReader("data: " + strings.Repeat("y", 10000) + "\n\n"))
	ev, err := r.Next()
	if err != nil || len(ev.Data) != 10000 {
		t.Errorf("got %d bytes, %v; want 10000", len(ev.Data), err)
	}
	r = NewReader(strings.NewReader(strings.Repeat("data: zz\n", 100) + "\n"))
	r.MaxEvent = 200
	if _, err := r.Next(); !errors.Is(err, ErrLineTooLong) {
		t.Errorf("an event over MaxEvent: got %v; want ErrLineTooLong", err)
	}
}

func TestWriteError(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteError(&buf, "upstream_error", "stalled", "the answer stalled\nafter 20 tokens"); err != nil {
		t.Fatal(err)
	}
	r := NewReader(&buf)
	ev, err := r.Next()
	if err != nil || ev.Type != "error" {
		t.Fatalf("got %+v, %v", ev, err)
	}
	var body ErrorBody
	if err := json.Unmarshal(ev.Data, &body); err != nil {
		t.Fatalf("data is not JSON: %v (%q)", err, ev.Data)
	}
	if body.Error.Code != "stalled" || body.Error.Type != "upstream_error" || !strings.Contains(body.Error.Message, "after 20 tokens") {
		t.Errorf("got %+v", body)
	}
	if err := WriteData(&buf, []byte("a\nb")); err == nil {
		t.Error("WriteData accepted a line break")
	}
}

func TestHasEvent(t *testing.T) {
	pr, pw := io.Pipe()
	r := NewReader(pr)
	go pw.Write([]byte("data: a\n\ndata: b\n\ndata: c"))
	if ev, err := r.Next(); err != nil || string(ev.Data) != "a" {
		t.Fatalf("got %q, %v", ev.Data, err)
	}
	if !r.HasEvent() {
		t.Error("HasEvent false with \"data: b\" read ahead")
	}
	r.Next()
	if r.HasEvent() {
		t.Error("HasEvent true with only part of an event read ahead")
	}
	pw.Close()
}

func TestMarkerBreak(t *testing.T) {
	m := NewMarker(io.NopCloser(&failingReader{data: "data: a\n\ndata: b\n\ndata: unfin"}), func(err error) (string, string) {
		return "cut", "the answer broke off: " + err.Error()
	})
	got, err := io.ReadAll(m)
	if !errors.Is(err, errBroken) {
		t.Fatalf("got error %v; want the body's own", err)
	}
	r := NewReader(bytes.NewReader(got))
	var data []string
	var errEv *Event
	for {
		ev, err := r.Next()
		if err != nil {
			if err != io.EOF {
				t.Fatalf("the marked stream does not parse: %v (%q)", err, got)
			}
			break
		}
		if ev.Type == "error" {
			e := ev
			errEv = &e
			continue
		}
		data = append(data, string(ev.Data))
	}
	if strings.Join(data, ",") != "a,b" {
		t.Errorf("got events %v; want a, b (the unfinished one dropped)", data)
	}
	var body ErrorBody
	if errEv == nil || json.Unmarshal(errEv.Data, &body) != nil || body.Error.Code != "cut" || !strings.Contains(body.Error.Message, "connection reset") {
		t.Errorf("got error event %q; want one JSON error with code cut", errEv.Raw)
	}
}

func TestMarkerEOF(t *testing.T) {
	m := NewMarker(io.NopCloser(strings.NewReader("data: a\n\ndata: tail")), func(error) (string, string) { return "", "" })
	got, err := io.ReadAll(m)
	if err != nil || string(got) != "data: a\n\ndata: tail" {
		t.Errorf("got %q, %v; want everything at EOF", got, err)
	}
}

// Package sse reads and writes Server-Sent Events (the WHATWG "text/event-stream"
// format) as model servers stream their answers: one event per blank-line
// separated block of "field: value" lines.
//
// The Reader keeps each event's raw bytes, so that a proxy can forward an
// event exactly as the upstream sent it, and reports what it cannot read
// (a line over its bound, a stream that ends in the middle of an event)
// as errors rather than guessing. Whether an event's data is valid (JSON,
// for OpenAI-compatible servers) is for the caller to judge.
package sse

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// DefaultMaxLine bounds a line (and so one data field) when Reader.MaxLine
// is 0: 1 MiB.
const DefaultMaxLine = 1 << 20

// DefaultMaxEvent bounds the raw bytes of one event when Reader.MaxEvent is
// 0: 4 MiB.
const DefaultMaxEvent = 4 << 20

// Errors of Next.
var (
	// ErrLineTooLong: a line, or an event, is longer than the Reader's
	// bound. The stream cannot be read further.
	ErrLineTooLong = errors.New("sse: event line too long")
	// ErrIncomplete: the stream ended in the middle of an event (its lines
	// were not ended by a blank line). The partial event is returned with
	// it.
	ErrIncomplete = errors.New("sse: stream ended in the middle of an event")
)

// Event is one event of a stream.
type Event struct {
	// Type is the "event:" field; "" means the default type, "message".
	Type string
	// Data is the "data:" fields joined with "\n".
	Data []byte
	// HasData reports whether the event had a "data:" field at all.
	HasData bool
	// ID is the "id:" field, when HasID.
	ID    string
	HasID bool
	// Retry is the "retry:" field in milliseconds, -1 when absent or not
	// a number.
	Retry int
	// Comments are the comment lines (":…"), without the colon.
	Comments [][]byte
	// Raw is the event as it was read, its closing blank line included.
	// It is valid until the next call of Next.
	Raw []byte
}

// IsComment reports whether the event holds only comments (a keep-alive,
// typically), no field.
func (e *Event) IsComment() bool {
	return len(e.Comments) > 0 && !e.HasData && e.Type == "" && !e.HasID && e.Retry < 0
}

// Reader reads events from a stream. It is not safe for concurrent use.
type Reader struct {
	br  *bufio.Reader
	raw []byte

	// MaxLine bounds one line; 0 means DefaultMaxLine.
	MaxLine int
	// MaxEvent bounds one event's raw bytes; 0 means DefaultMaxEvent.
	MaxEvent int
}

// NewReader returns a Reader of r.
func NewReader(r io.Reader) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, 4096)}
}

// HasEvent reports whether a whole event is already read ahead, so that
// the next Next will not wait for the stream: a proxy that forwards events
// may flush only when it is false. It never blocks.
func (r *Reader) HasEvent() bool {
	b, _ := r.br.Peek(r.br.Buffered())
	return bytes.Contains(b, []byte("\n\n")) || bytes.Contains(b, []byte("\n\r\n"))
}

// Next returns the next event. At the end of the stream it returns io.EOF
// when the last event was complete, ErrIncomplete (with the partial event)
// when it was not; any error of the underlying reader is returned as is,
// also with the partial event read so far (its Raw tells how much).
// Blank lines between events are skipped.
func (r *Reader) Next() (Event, error) {
	maxLine, maxEvent := r.MaxLine, r.MaxEvent
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	if maxEvent <= 0 {
		maxEvent = DefaultMaxEvent
	}
	ev := Event{Retry: -1}
	r.raw = r.raw[:0]
	var data bytes.Buffer
	fields := false
	for {
		line, err := r.readLine(maxLine)
		if len(line) > 0 {
			r.raw = append(r.raw, line...)
			if len(r.raw) > maxEvent {
				return ev, ErrLineTooLong
			}
		}
		if err != nil {
			if err == io.EOF {
				trimmed := trimEOL(line)
				if len(trimmed) > 0 {
					r.field(&ev, &data, trimmed)
					fields = true
				}
				if fields || len(ev.Comments) > 0 {
					r.finish(&ev, &data)
					return ev, ErrIncomplete
				}
			}
			r.finish(&ev, &data)
			return ev, err
		}
		trimmed := trimEOL(line)
		if len(trimmed) == 0 {
			if !fields && len(ev.Comments) == 0 {
				r.raw = r.raw[:0] // a blank line between events
				continue
			}
			r.finish(&ev, &data)
			return ev, nil
		}
		if r.field(&ev, &data, trimmed) {
			fields = true
		}
	}
}

func (r *Reader) finish(ev *Event, data *bytes.Buffer) {
	if ev.HasData {
		ev.Data = data.Bytes()
	}
	ev.Raw = r.raw
}

// field applies one non-empty line; it reports whether it was a field
// (not a comment).
func (r *Reader) field(ev *Event, data *bytes.Buffer, line []byte) bool {
	if line[0] == ':' {
		ev.Comments = append(ev.Comments, bytes.TrimPrefix(line[1:], []byte(" ")))
		return false
	}
	name, value, found := bytes.Cut(line, []byte(":"))
	if found && len(value) > 0 && value[0] == ' ' {
		value = value[1:]
	}
	switch string(name) {
	case "data":
		if ev.HasData {
			data.WriteByte('\n')
		}
		data.Write(value)
		ev.HasData = true
	case "event":
		ev.Type = string(value)
	case "id":
		if bytes.IndexByte(value, 0) < 0 {
			ev.ID, ev.HasID = string(value), true
		}
	case "retry":
		if n, err := strconv.Atoi(string(value)); err == nil && n >= 0 {
			ev.Retry = n
		}
	}
	// Other field names are ignored, as the standard says; they still
	// make the block an event.
	return true
}

// readLine reads one line with its end of line ("\n", "\r\n"; a lone "\r"
// is not treated as an end of line: no server of the field sends one).
func (r *Reader) readLine(maxLine int) ([]byte, error) {
	var long []byte
	for {
		frag, err := r.br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			long = append(long, frag...)
			if len(long) > maxLine {
				return nil, ErrLineTooLong
			}
			continue
		}
		if long != nil {
			long = append(long, frag...)
			if len(long) > maxLine+2 {
				return nil, ErrLineTooLong
			}
			return long, err
		}
		if len(frag) > maxLine+2 {
			return nil, ErrLineTooLong
		}
		return frag, err
	}
}

func trimEOL(line []byte) []byte {
	line = bytes.TrimSuffix(line, []byte("\n"))
	return bytes.TrimSuffix(line, []byte("\r"))
}

// ErrorBody is the JSON of an error event's data, in the shape OpenAI's API
// uses for errors, so that OpenAI clients show its message.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail says what went wrong.
type ErrorDetail struct {
	Message string `json:"message"`
	Type    string `json:"type"`
	Code    string `json:"code,omitempty"`
}

// WriteError writes an error event, "event: error" and one "data:" line of
// JSON ({"error": {"message", "type", "code"}}), the way a stream is
// marked incomplete before it is broken off. message must already be free
// of secrets.
func WriteError(w io.Writer, typ, code, message string) error {
	b, err := json.Marshal(ErrorBody{Error: ErrorDetail{Message: message, Type: typ, Code: code}})
	if err != nil {
		return fmt.Errorf("sse: encoding an error event: %w", err)
	}
	_, err = fmt.Fprintf(w, "event: error\ndata: %s\n\n", b)
	return err
}

// WriteData writes an event with one data field; data must not contain a
// newline (a JSON document written by encoding/json does not).
func WriteData(w io.Writer, data []byte) error {
	if bytes.ContainsAny(data, "\r\n") {
		return errors.New("sse: data with a line break must be written as several data fields")
	}
	buf := make([]byte, 0, len(data)+8)
	buf = append(buf, "data: "...)
	buf = append(buf, data...)
	buf = append(buf, "\n\n"...)
	_, err := w.Write(buf)
	return err
}

package httpserver

import (
	"fmt"
	"strings"
	"testing"
)

// guardBenchStream is what a keep-alive client of healproxy sends: API
// calls with the usual headers, JSON bodies by Content-Length, and a
// chunked upload, pipelined, rounds times.
func guardBenchStream(rounds int) []byte {
	const hdr = "Host: 127.0.0.1:8080\r\nUser-Agent: client/1.4 (linux; amd64)\r\n" +
		"Accept: application/json\r\nAccept-Encoding: gzip\r\nAuthorization: Bearer sk-0123456789abcdef0123456789abcdef\r\n"
	body := `{"model":"m","messages":[{"role":"user","content":"` + strings.Repeat("x", 900) + `"}]}`
	var sb strings.Builder
	for range rounds {
		sb.WriteString("GET /providers/p/v1/models HTTP/1.1\r\n" + hdr + "\r\n")
		fmt.Fprintf(&sb, "POST /providers/p/v1/chat/completions HTTP/1.1\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", hdr, len(body), body)
		fmt.Fprintf(&sb, "POST /providers/p/v1/files HTTP/1.1\r\n%sTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n", hdr, len(body), body, 10, "0123456789")
	}
	return []byte(sb.String())
}

// BenchmarkGuardConn is guardConn's cost on the reading path: a pipelined
// stream of 3×rounds requests followed in the 4 KiB pieces net/http's
// bufio.Reader reads. allocs/op is per stream of 300 requests.
func BenchmarkGuardConn(b *testing.B) {
	stream := guardBenchStream(100)
	c := &guardConn{}
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		for s := stream; len(s) > 0; {
			n := min(len(s), 4096)
			c.follow(s[:n])
			s = s[n:]
		}
		if c.state != gHead || c.refused.Load() != nil {
			b.Fatalf("state %d, refused %v after the stream; want a head next, nothing refused", c.state, c.refused.Load())
		}
	}
}

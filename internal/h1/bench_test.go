package h1

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// benchBody is the upstream's answer, the same as the proxy's benchmarks
// send.
const benchBody = `{"bitcoin":{"usd":97000.5,"usd_24h_change":1.25},"ethereum":{"usd":3400.1,"usd_24h_change":-0.5}}`

// BenchmarkLeanClientRoundTrip is the lean client alone, serially, on one
// kept-alive connection to an upstream that answers every request head
// with a canned answer: what the client costs per request (the pool, the
// reuse check, the write, the parse) without a proxy around it.
//
//	go test -run '^$' -bench LeanClientRoundTrip -benchmem -count 5 ./internal/h1/
func BenchmarkLeanClientRoundTrip(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	answer := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
		strconv.Itoa(len(benchBody)) + "\r\n\r\n" + benchBody)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for {
			for { // one request head
				line, err := br.ReadSlice('\n')
				if err != nil {
					return
				}
				if len(line) == 2 {
					break
				}
			}
			if _, err := c.Write(answer); err != nil {
				return
			}
		}
	}()
	d := &net.Dialer{Timeout: 5 * time.Second}
	p := newPool(ln.Addr().String(), ln.Addr().String(), d.DialContext)
	b.Cleanup(func() { p.close(); ln.Close(); <-done })
	req, _ := http.NewRequestWithContext(context.Background(), "GET", "http://"+ln.Addr().String()+"/x", nil)
	target := Target{Path: "/api/v3/simple/price", Query: "ids=bitcoin"}
	buf := make([]byte, 512)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := p.RoundTrip(req, target, 10*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := resp.Body.Read(buf); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
		resp.Body.Close()
	}
	b.StopTimer()
	if n := p.dials.Load(); n != 1 {
		b.Errorf("%d dials; want 1 (every request on the one kept-alive connection)", n)
	}
}

// BenchmarkLeanClientIdleCheck is the check a pooled connection passes
// before it is reused (one non-blocking peek at the socket): its cost
// alone, which BenchmarkLeanClientRoundTrip's noise hides.
func BenchmarkLeanClientIdleCheck(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	d := &net.Dialer{Timeout: 5 * time.Second}
	p := newPool(ln.Addr().String(), ln.Addr().String(), d.DialContext)
	c, _, err := p.newConn(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer c.nc.Close()
	if s := <-accepted; s != nil {
		defer s.Close()
	}
	b.ReportAllocs()
	for b.Loop() {
		if !c.idleClean() {
			b.Fatal("a quiet connection was found unclean")
		}
	}
}

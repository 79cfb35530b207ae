package h1

import (
	"errors"
	"net"
	"net/http"
	"strconv"
	"testing"
)

// Each request of FuzzLeanClient is two bytes of the input:
//
//	a: bit 0     HEAD (else GET)
//	   bits 1-3  the answer (leanFuzzAnswer)
//	   bit 4     an informational 103 before it
//	b: bits 0-2  bytes after the answer (leanFuzzExtra)
//	   bit 3     those bytes written late: once the client has read its
//	             answer and handed the connection back (not after a
//	             short body)
//	   bit 4     the upstream closes the connection after the exchange
const leanFuzzMaxRequests = 10

// leanFuzzReply is the upstream's script for request id of method, from
// its two bytes.
func leanFuzzReply(method, id string, a, b byte) upstreamReply {
	head := method == http.MethodHead
	body := "answer " + id
	withBody := func(s string) string {
		if head {
			return ""
		}
		return s
	}
	hdr := "X-Req: " + id + "\r\n"
	var r upstreamReply
	kind := (a >> 1) & 7
	switch kind {
	case 0: // honest, Content-Length
		r.answer = "HTTP/1.1 200 OK\r\n" + hdr + "Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + withBody(body)
	case 1: // honest, chunked, with a trailer
		r.answer = "HTTP/1.1 200 OK\r\n" + hdr + "Transfer-Encoding: chunked\r\n\r\n" +
			withBody(strconv.FormatInt(int64(len(body)), 16)+"\r\n"+body+"\r\n0\r\nX-Sum: 1\r\n\r\n")
	case 2: // honest, Connection: close
		r.answer = "HTTP/1.1 200 OK\r\n" + hdr + "Connection: close\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + withBody(body)
		r.closeAfter = true
	case 3: // a body shorter than declared, then the connection closed
		r.answer = "HTTP/1.1 200 OK\r\n" + hdr + "Content-Length: 100\r\n\r\n" + withBody(body)
		r.closeAfter = true
	case 4: // garbage for a status line
		r.answer = "HTTX/9 nonsense\r\n" + hdr + "\r\n"
	case 5: // closed without an answer
		r.answer = ""
	case 6: // a broken chunked body
		r.answer = "HTTP/1.1 200 OK\r\n" + hdr + "Transfer-Encoding: chunked\r\n\r\n" + withBody("zz\r\nnot a chunk\r\n")
	case 7: // a 408, as a server timing out a kept-alive connection writes it
		r.answer = "HTTP/1.1 408 Request Timeout\r\n" + hdr + "Connection: close\r\nContent-Length: 0\r\n\r\n"
		r.closeAfter = true
	}
	if r.answer != "" && a&(1<<4) != 0 {
		r.answer = "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" + r.answer
	}
	switch b & 7 {
	case 1: // a whole second answer naming no request
		r.extra = strayAnswer("stray-" + id)
	case 2: // two of them
		r.extra = strayAnswer("stray-a-"+id) + strayAnswer("stray-b-"+id)
	case 3: // garbage
		r.extra = "\x00junk\r\n"
	case 4: // the body again: a HEAD answer's body, or bytes after a GET's
		r.extra = body
	case 5: // a HEAD-style body that reads as a whole answer
		r.extra = strayAnswer("body-" + id)
	case 6: // half an answer's head
		r.extra = "HTTP/1.1 200 OK\r\nX-Req: half-" + id + "\r\n"
	case 7: // a chunked stray answer
		r.extra = "HTTP/1.1 200 OK\r\nX-Req: chunked-" + id + "\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nstray\r\n0\r\n\r\n"
	}
	// Late only after an answer whose end the client can see: after a
	// short body the client waits for the rest, and the late bytes would
	// come only once it gave up.
	r.late = b&(1<<3) != 0 && r.extra != "" && kind != 3
	if b&(1<<4) != 0 {
		r.closeAfter = true
	}
	return r
}

// FuzzLeanClient sends a sequence of GET and HEAD requests, one after the
// other, through one lean client pool to a loopback upstream whose every
// exchange the input scripts: honest answers naming their request, and
// around them stray answers, garbage, HEAD bodies, early closes and
// broken framing. An answer that reaches a client (no error) must be its
// own request's; errors are fine.
func FuzzLeanClient(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0})                         // honest GETs on one connection
	f.Add([]byte{0, 1<<3 | 1, 0, 0})                  // a late stray answer
	f.Add([]byte{0, 1, 0, 0})                         // a stray answer with the answer
	f.Add([]byte{0, 1<<3 | 2, 0, 0, 0, 0})            // two late strays, then more requests
	f.Add([]byte{1, 1<<3 | 4, 0, 0})                  // HEAD, then its body, late
	f.Add([]byte{1, 4, 0, 0})                         // HEAD with its body
	f.Add([]byte{1, 1<<3 | 5, 0, 0, 0, 0})            // HEAD with a body that reads as an answer
	f.Add([]byte{0, 1<<3 | 3, 0, 0})                  // late garbage
	f.Add([]byte{0, 1<<3 | 6, 0, 0})                  // half a head, late
	f.Add([]byte{2, 1<<3 | 7, 0, 0})                  // chunked answer, late chunked stray
	f.Add([]byte{4, 1 << 3, 0, 0})                    // Connection: close
	f.Add([]byte{6, 0, 0, 0})                         // a short body, closed
	f.Add([]byte{8, 0, 0, 0})                         // garbage status line
	f.Add([]byte{0, 0, 10, 0, 0, 0})                  // closed without an answer on a reused connection
	f.Add([]byte{12, 0, 0, 0})                        // a broken chunked body
	f.Add([]byte{0, 0, 14, 0, 0, 0})                  // a 408 on a reused connection
	f.Add([]byte{16, 1<<3 | 1, 0, 0})                 // 103, then an answer, then a late stray
	f.Add([]byte{0, 1<<4 | 1<<3 | 1, 0, 0})           // a late stray, then a close
	f.Add([]byte{0, 1 << 4, 0, 0, 1, 1<<3 | 5, 0, 0}) // a late close, HEAD with a body
	f.Fuzz(func(t *testing.T, data []byte) {
		n := min(len(data)/2, leanFuzzMaxRequests)
		if n == 0 {
			return
		}
		methods := make([]string, n)
		for i := range n {
			methods[i] = http.MethodGet
			if data[2*i]&1 != 0 {
				methods[i] = http.MethodHead
			}
		}
		u := newScriptedUpstream(t, func(method, id string) upstreamReply {
			i, err := strconv.Atoi(id)
			if err != nil || i < 0 || i >= n {
				return upstreamReply{} // not one of ours: close
			}
			return leanFuzzReply(method, id, data[2*i], data[2*i+1])
		})
		defer u.stop()
		p := leanPoolFor(u)
		defer p.close()
		for i := range n {
			id := strconv.Itoa(i)
			a, err := leanDo(p, methods[i], id)
			// No script leaves the client waiting: a timeout is a hang.
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.As(a.bodyErr, &ne) && ne.Timeout() {
				t.Fatalf("request %s (%s) hung: %v %v", id, methods[i], err, a.bodyErr)
			}
			if err == nil {
				if a.id != id {
					t.Fatalf("request %s (%s) was delivered the answer of %q: %+v", id, methods[i], a.id, a)
				}
				kind := (data[2*i] >> 1) & 7
				if kind <= 2 && a.bodyErr == nil {
					want := "answer " + id
					if methods[i] == http.MethodHead {
						want = ""
					}
					if a.status != http.StatusOK || a.body != want {
						t.Fatalf("request %s (%s): %+v; want 200 with body %q", id, methods[i], a, want)
					}
				}
			}
			u.releaseLate(id)
			u.settle(t, p)
		}
	})
}

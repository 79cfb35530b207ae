package llm

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/fakeopenai"
	"github.com/healproxy/healproxy/internal/sse"
)

// BenchmarkStream compares a streamed answer of 200 tokens read directly
// from a model server with the same answer through the gateway: the
// time to first token (p50, reported as ttft-p50-µs) and the tokens per
// second of the whole answer (tok/s). "unpaced" sends the tokens as fast
// as it can (the gateway's worst case: its own cost per event is all
// there is); "paced" sends one per 2ms (500 tokens a second, a very fast model server).
//
//	go test -run '^$' -bench BenchmarkStream -benchtime 300x ./llm/
func BenchmarkStream(b *testing.B) {
	for _, pace := range []struct {
		name string
		d    time.Duration
	}{{"unpaced", 0}, {"paced", 2 * time.Millisecond}} {
		f := fakeopenai.New(fakeopenai.Options{Tokens: 200, TokenInterval: pace.d})
		u, _ := url.Parse(f.BaseURL())
		cfg := &config.Config{Models: []config.Model{{Key: "m", Endpoints: []*url.URL{u}}}}
		cfg.Normalize()
		g := New(cfg.Models, Options{})
		gw := httptest.NewServer(g)
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
		for _, target := range []struct{ name, url string }{
			{"direct", f.BaseURL() + "/chat/completions"},
			{"gateway", gw.URL + "/v1/chat/completions"},
		} {
			b.Run(pace.name+"/"+target.name, func(b *testing.B) {
				body, _ := json.Marshal(map[string]any{"model": "m", "stream": true,
					"messages": []map[string]string{{"role": "user", "content": "Say the tokens."}}})
				var ttfts []time.Duration
				tokens, total := 0, time.Duration(0)
				for b.Loop() {
					start := time.Now()
					resp, err := client.Post(target.url, "application/json", bytes.NewReader(body))
					if err != nil {
						b.Fatal(err)
					}
					rd := sse.NewReader(resp.Body)
					first := time.Duration(0)
					for {
						ev, err := rd.Next()
						if err != nil {
							break
						}
						var ck chunk
						if json.Unmarshal(ev.Data, &ck) != nil {
							continue
						}
						if text, _, _ := ck.text(); text != "" {
							if first == 0 {
								first = time.Since(start)
							}
							tokens++
						}
					}
					resp.Body.Close()
					total += time.Since(start)
					ttfts = append(ttfts, first)
				}
				slices.Sort(ttfts)
				b.ReportMetric(float64(ttfts[len(ttfts)/2].Microseconds()), "ttft-p50-µs")
				b.ReportMetric(float64(tokens)/total.Seconds(), "tok/s")
			})
		}
		gw.Close()
		g.Close()
		f.Close()
	}
}

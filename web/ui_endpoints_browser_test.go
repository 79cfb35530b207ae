package web_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/healproxy/healproxy/internal/browsertest"
	"github.com/healproxy/healproxy/internal/fakeopenai"
)

// TestBrowserUIEndpointModel: a model served over HTTP (endpoints = [...])
// shows its endpoints as a provider shows its upstreams, each with its
// health, and offers no drain or force-open on them; nothing on the page
// reads "null" and the like.
func TestBrowserUIEndpointModel(t *testing.T) {
	browsertest.ChromiumPath(t)
	a := fakeopenai.New(fakeopenai.Options{Tokens: 5, Script: fakeopenai.Always(fakeopenai.Overloaded)})
	t.Cleanup(a.Close)
	b := fakeopenai.New(fakeopenai.Options{Tokens: 5})
	t.Cleanup(b.Close)
	f := startFleet(t, `
model "gpt" {
  name      = "GPT over HTTP"
  endpoints = ["`+a.BaseURL()+`", "`+b.BaseURL()+`"]
}
`)
	resp, err := http.Post(f.url+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"gpt","messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("chat completion: %d; want 200 from the second endpoint", resp.StatusCode)
	}
	p := openPage(t, f.url+"/")
	row := `article[data-kind="model"][data-key="gpt"]`
	p.WaitJS("gpt's row shows its endpoints", `document.querySelectorAll('`+row+` ul.upstreams li').length === 2`, 10*time.Second)
	if got := p.Text(row + ` .facts`); !strings.Contains(got, "1 of 2 healthy") {
		t.Errorf("gpt's facts %q; want its endpoints as 1 of 2 healthy", got)
	}
	list := p.Text(row + ` ul.upstreams`)
	for _, u := range []string{a.BaseURL(), b.BaseURL()} {
		if !strings.Contains(list, u) {
			t.Errorf("endpoints list %q; want %s", list, u)
		}
	}
	if n := browsertest.Eval[int](p.Browser, `document.querySelectorAll('`+row+` button[data-control]').length`); n != 0 {
		t.Errorf("%d operator buttons on a model's endpoints; want none", n)
	}
	if got := p.Text(row + ` [data-reinit]`); !strings.Contains(got, "Reset") {
		t.Errorf("gpt's self-heal button reads %q; want Reset (its endpoints are cleared, no process is started)", got)
	}
	p.badText("an endpoint model")
	p.NoProblems()
}

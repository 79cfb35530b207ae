package config

import (
	"reflect"
	"strings"
	"testing"

	"github.com/healproxy/healproxy/config/corscfg"
)

func TestCORSAndTraceParse(t *testing.T) {
	cfg := mustParse(t, "x.hcl", `
provider "app" {
  upstreams   = ["https://a.example/v1"]
  allow_trace = true
  cors {
    allow_origins = [
      "https://App.Example",
      "HTTP://localhost:3000/",
      "https://admin.example:443",
      "http://plain.example:80",
      "https://odd.example:8443",
      "http://[0:0:0:0:0:0:0:1]:8080",
      "http://127.0.0.1:5173",
    ]
  }
}
provider "any" {
  upstreams   = ["https://a.example/v1"]
  allow_trace = false
  cors {
    allow_origins = ["*"]
  }
}
provider "env" {
  upstreams = ["https://a.example/v1"]
  cors {
    allow_origins = [env("APP_ORIGIN")]
  }
}
provider "plain" {
  upstreams = ["https://a.example/v1"]
}
`, map[string]string{"APP_ORIGIN": "https://from-env.example"})

	tests := []struct {
		id    string
		trace bool
		cors  *corscfg.CORS
	}{
		{"app", true, &corscfg.CORS{AllowOrigins: []string{
			"https://app.example",
			"http://localhost:3000",
			"https://admin.example",
			"http://plain.example",
			"https://odd.example:8443",
			"http://[::1]:8080",
			"http://127.0.0.1:5173",
		}}},
		{"any", false, &corscfg.CORS{AllowOrigins: []string{"*"}}},
		{"env", false, &corscfg.CORS{AllowOrigins: []string{"https://from-env.example"}}},
		{"plain", false, nil}, // the defaults: no TRACE, no CORS
	}
	for _, tt := range tests {
		p := cfg.Provider(tt.id)
		if p.AllowTrace != tt.trace {
			t.Errorf("provider %s: got allow_trace %v; want %v", tt.id, p.AllowTrace, tt.trace)
		}
		if !reflect.DeepEqual(p.CORS, tt.cors) {
			t.Errorf("provider %s: got cors %+v; want %+v", tt.id, p.CORS, tt.cors)
		}
	}
}

// The reload keeps a provider whose Config compares equal (deeply), so two
// loads of the same file must give equal providers, and a change of either
// setting an unequal one.
func TestCORSAndTraceCompare(t *testing.T) {
	src := func(trace, origin string) string {
		return prov("  allow_trace = " + trace + "\n  cors {\n    allow_origins = [\"" + origin + "\"]\n  }\n")
	}
	base := mustParse(t, "x.hcl", src("false", "https://a.example"), nil).Providers[0]
	for _, tt := range []struct {
		src  string
		same bool
	}{
		{src("false", "https://a.example"), true},
		{src("false", "HTTPS://A.EXAMPLE:443/"), true}, // the same origin once normalised
		{src("true", "https://a.example"), false},
		{src("false", "https://b.example"), false},
		{prov("  allow_trace = false\n"), false},
	} {
		p := mustParse(t, "x.hcl", tt.src, nil).Providers[0]
		if got := reflect.DeepEqual(base, p); got != tt.same {
			t.Errorf("got equal %v for\n%s\nwant %v", got, tt.src, tt.same)
		}
	}
}

func TestCORSAndTraceRejections(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // prefixes of lines of FormatDiagnostics, in order
	}{
		{
			name: "allow_trace not a bool",
			src:  prov("  allow_trace = \"sometimes\"\n"),
			want: []string{`x.hcl:3:18: Unsuitable value type;`},
		},
		{
			name: "missing allow_origins",
			src:  prov("  cors {}\n"),
			want: []string{`x.hcl:3:3: Missing allow_origins; Provider "p": cors needs allow_origins = ["https://app.example", …], the origins whose pages may read its answers, or ["*"] for any; leave the cors block out to allow none.`},
		},
		{
			name: "misspelt allow_origins",
			src:  prov("  cors {\n    allow_origin = [\"*\"]\n  }\n"),
			want: []string{
				`x.hcl:3:3: Missing allow_origins;`,
				`x.hcl:4:5: Unsupported argument; An argument named "allow_origin" is not expected here. Did you mean "allow_origins"?`,
			},
		},
		{
			name: "empty allow_origins",
			src:  prov("  cors {\n    allow_origins = []\n  }\n"),
			want: []string{`x.hcl:4:21: Empty allow_origins; Provider "p": allow_origins lists no origin; list one or more such as ["https://app.example"], or leave the cors block out to allow none.`},
		},
		{
			name: "allow_origins not a list",
			src:  prov("  cors {\n    allow_origins = \"*\"\n  }\n"),
			want: []string{`x.hcl:4:21: Invalid allow_origins; Want a list of strings, got string.`},
		},
		{
			name: "allow_origins elements not strings",
			src:  prov("  cors {\n    allow_origins = [null, [\"*\"]]\n  }\n"),
			want: []string{
				`x.hcl:4:22: Invalid allow_origins; Element 0: want a string, got null.`,
				`x.hcl:4:28: Invalid allow_origins; Element 1: want a string, got tuple.`,
			},
		},
		{
			name: "duplicate cors blocks",
			src:  prov("  cors {\n    allow_origins = [\"*\"]\n  }\n  cors {\n    allow_origins = [\"*\"]\n  }\n"),
			want: []string{`x.hcl:6:3: Duplicate cors block;`},
		},
		{
			name: "unknown attribute",
			src:  prov("  cors {\n    allow_origins = [\"*\"]\n    allow_methods = [\"GET\"]\n  }\n"),
			want: []string{`x.hcl:5:5: Unsupported argument; An argument named "allow_methods" is not expected here.`},
		},
		{
			name: "duplicates after normalising",
			src: prov(`  cors {
    allow_origins = ["https://a.example", "HTTPS://A.example:443/", "https://a.example:8443", "https://a.example"]
  }
`),
			want: []string{
				`x.hcl:4:43: Duplicate origin; allow_origins[1]: "https://a.example" is already listed, at allow_origins[0] (origins are compared without case and default port).`,
				`x.hcl:4:95: Duplicate origin; allow_origins[3]: "https://a.example" is already listed, at allow_origins[0]`,
			},
		},
		{
			name: "star with others",
			src:  prov("  cors {\n    allow_origins = [\"https://a.example\", \"*\"]\n  }\n"),
			want: []string{`x.hcl:4:43: Invalid origin; allow_origins[1]: "*" allows every origin, so it cannot be listed with others; write ["*"] alone, or list the origins without it.`},
		},
		{
			name: "star twice",
			src:  prov("  cors {\n    allow_origins = [\"*\", \"*\"]\n  }\n"),
			want: []string{`x.hcl:4:27: Duplicate origin; allow_origins[1]: "*" is already listed, at allow_origins[0]`},
		},
		{
			name: "origins",
			src: `provider "p" {
  upstreams = ["http://h"]
  cors {
    allow_origins = [
      "",
      "null",
      "app.example",
      "ftp://app.example",
      "https://app.example/api",
      "https://app.example//",
      "https://app.example?x=1",
      "https://app.example#top",
      "https://user@app.example",
      "https://*.app.example",
      "https://bücher.example",
      "https://app$.example",
      "http://127.1",
      "http://[fe80::1%25eth0]",
      "http://[::ffff:127.0.0.1]",
      "https://app.example:0",
      "https://:443",
      "https://app .example",
    ]
  }
}
`,
			want: []string{
				`x.hcl:5:7: Invalid origin; allow_origins[0]: the origin is empty; want one such as "https://app.example", or "*" for any.`,
				`x.hcl:6:7: Invalid origin; allow_origins[1]: "null" is not allowed: browsers send it from sandboxed frames and local files, which any site can make, so it would let any site read the answers.`,
				`x.hcl:7:7: Invalid origin; allow_origins[2]: want an origin such as "https://app.example" (an http:// or https:// scheme and a host), or "*" for any.`,
				`x.hcl:8:7: Invalid origin; allow_origins[3]: want an origin such as "https://app.example"`,
				`x.hcl:9:7: Invalid origin; allow_origins[4]: an origin has no path. Did you mean "https://app.example"?`,
				`x.hcl:10:7: Invalid origin; allow_origins[5]: an origin has no path. Did you mean "https://app.example"?`,
				`x.hcl:11:7: Invalid origin; allow_origins[6]: an origin has no ?query. Did you mean "https://app.example"?`,
				`x.hcl:12:7: Invalid origin; allow_origins[7]: the URL must not have a #fragment.`,
				`x.hcl:13:7: Invalid origin; allow_origins[8]: an origin has no user info. Did you mean "https://app.example"?`,
				`x.hcl:14:7: Invalid origin; allow_origins[9]: wildcard hosts are not supported; list each origin, or write "*" alone for any.`,
				`x.hcl:15:7: Invalid origin; allow_origins[10]: write the host in its ASCII (punycode) form, as browsers send it,`,
				`x.hcl:16:7: Invalid origin; allow_origins[11]: the host is not a valid host name.`,
				`x.hcl:17:7: Invalid origin; allow_origins[12]: the host ends in a number, so it must be an IPv4 address written as browsers send it, such as "127.0.0.1".`,
				`x.hcl:18:7: Invalid origin; allow_origins[13]: the host is not an IPv6 address that a browser sends.`,
				`x.hcl:19:7: Invalid origin; allow_origins[14]: an IPv4-mapped IPv6 address is not supported; write the IPv4 address.`,
				`x.hcl:20:7: Invalid origin; allow_origins[15]: the port must be a number from 1 to 65535.`,
				`x.hcl:21:7: Invalid origin; allow_origins[16]: the URL has no host.`,
				`x.hcl:22:7: Invalid origin; allow_origins[17]: not a URL.`,
			},
		},
		{
			name: "every provider is checked",
			src: `provider "a" {
  upstreams = ["http://h"]
  cors {}
}
provider "b" {
  upstreams   = ["http://h"]
  allow_trace = 2
  cors { allow_origins = ["https://x/y"] }
}
`,
			want: []string{
				`x.hcl:3:3: Missing allow_origins; Provider "a":`,
				`x.hcl:7:17: Unsuitable value type;`,
				`x.hcl:8:27: Invalid origin; allow_origins[0]: an origin has no path. Did you mean "https://x"?`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := mustFail(t, "x.hcl", tt.src, nil)
			wantDiagnostics(t, out, tt.want)
		})
	}
}

// Like an upstream URL, a rejected origin is not echoed: its user info or
// query could hold a secret.
func TestCORSOriginNotEchoed(t *testing.T) {
	out := mustFail(t, "x.hcl", prov(`  cors {
    allow_origins = ["https://u:SECRET1@a.example", "https://a.example/?key=SECRET2", "https://b.example/SECRET3", "gopher://SECRET4"]
  }
`), nil)
	if strings.Contains(out, "SECRET") {
		t.Errorf("got diagnostics that show a secret:\n%s", out)
	}
	if n := strings.Count(out, "\n"); n != 4 {
		t.Errorf("got %d diagnostics:\n%s\nwant 4", n, out)
	}
}

package deploy_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/healproxy/healproxy/config"
)

// k8sObject is the part of a Kubernetes object this test reads.
type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Data map[string]string `yaml:"data"`
	Spec struct {
		Ports []struct {
			Port       int    `yaml:"port"`
			TargetPort string `yaml:"targetPort"`
		} `yaml:"ports"`
		Template struct {
			Spec struct {
				SecurityContext struct {
					RunAsNonRoot bool `yaml:"runAsNonRoot"`
				} `yaml:"securityContext"`
				Containers []struct {
					Name  string   `yaml:"name"`
					Image string   `yaml:"image"`
					Args  []string `yaml:"args"`
					Ports []struct {
						Name          string `yaml:"name"`
						ContainerPort int    `yaml:"containerPort"`
					} `yaml:"ports"`
					ReadinessProbe struct {
						HTTPGet struct {
							Path string `yaml:"path"`
							Port string `yaml:"port"`
						} `yaml:"httpGet"`
					} `yaml:"readinessProbe"`
				} `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

// TestKubernetesExample checks the Kubernetes example without a cluster:
// every file parses, the config map's proxy.hcl is valid healproxy
// config, readiness is on /healthz at the port the config listens on,
// the config's Redis is the Redis Service, and the pods run as non-root.
func TestKubernetesExample(t *testing.T) {
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(files) < 4 {
		t.Fatalf("got %v, %v; want the example's files", files, err)
	}
	objs := map[string]k8sObject{} // kind/name
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		for {
			var o k8sObject
			if err := dec.Decode(&o); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if o.Kind == "" {
				t.Errorf("%s: an object without kind", f)
			}
			objs[o.Kind+"/"+o.Metadata.Name] = o
		}
	}

	cm, ok := objs["ConfigMap/healproxy-config"]
	if !ok {
		t.Fatal("no ConfigMap healproxy-config")
	}
	cfg, diags := config.Parse("configmap.yaml:proxy.hcl", []byte(cm.Data["proxy.hcl"]), config.LoadOptions{
		Getenv:         func(string) (string, bool) { return "", false },
		BuiltinPlugins: []string{"sentiment"},
	})
	if diags.HasErrors() {
		t.Fatalf("the config map's proxy.hcl is invalid:\n%s", config.FormatDiagnostics(diags))
	}
	_, listenPort, _ := strings.Cut(cfg.Listen, ":")

	dep, ok := objs["Deployment/healproxy"]
	if !ok || len(dep.Spec.Template.Spec.Containers) != 1 {
		t.Fatal("no Deployment healproxy with one container")
	}
	c := dep.Spec.Template.Spec.Containers[0]
	if c.ReadinessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("got readiness on %q; want /healthz", c.ReadinessProbe.HTTPGet.Path)
	}
	if len(c.Ports) != 1 || c.Ports[0].Name != c.ReadinessProbe.HTTPGet.Port || strconv.Itoa(c.Ports[0].ContainerPort) != listenPort {
		t.Errorf("got ports %+v, readiness port %q, listen %q; want one named port, probed, the one the config listens on",
			c.Ports, c.ReadinessProbe.HTTPGet.Port, cfg.Listen)
	}
	if !dep.Spec.Template.Spec.SecurityContext.RunAsNonRoot {
		t.Error("the pods may run as root")
	}

	redis, ok := objs["Service/healproxy-redis"]
	if !ok || len(redis.Spec.Ports) != 1 {
		t.Fatal("no Service healproxy-redis with one port")
	}
	if cfg.Shared == nil || !strings.HasPrefix(cfg.Shared.RedisURL, "redis://healproxy-redis:"+strconv.Itoa(redis.Spec.Ports[0].Port)+"/") {
		t.Errorf("got state.redis %v; want the healproxy-redis Service", cfg.Shared)
	}
	if _, ok := objs["Service/healproxy"]; !ok {
		t.Error("no Service healproxy")
	}
}

// TestDockerfile checks what can be checked of the Dockerfile without a
// container runtime: a build stage and a final stage, a non-root user,
// the default config, and the listen port it exposes.
func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	for _, want := range []string{
		`(?m)^FROM \S+ AS build$`, `(?m)^FROM scratch$`, `(?m)^COPY --from=build `,
		`(?m)^USER 65532:65532$`, `CGO_ENABLED=0 go build`, `cp proxy.hcl /out/etc/healproxy/proxy.hcl`,
		`(?m)^EXPOSE 7860$`, `"-listen", "0.0.0.0:7860"`, `"-config", "/etc/healproxy/proxy.hcl"`,
	} {
		if !regexp.MustCompile(want).MatchString(text) {
			t.Errorf("the Dockerfile has nothing matching %s", want)
		}
	}
	// The default config it ships is valid.
	if _, diags := config.Load("../proxy.hcl", config.LoadOptions{BuiltinPlugins: []string{"sentiment"},
		Getenv: func(string) (string, bool) { return "", false }}); diags.HasErrors() {
		t.Errorf("proxy.hcl: %s", config.FormatDiagnostics(diags))
	}
}

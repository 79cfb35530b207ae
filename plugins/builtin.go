package plugins

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/healproxy/healproxy/plugins/sentiment"
)

// Builtins maps each built-in plugin name (the `plugin = "NAME"` of a model
// block, and the NAME of `healproxy plugin NAME`) to a constructor of its
// Model. Read-only after init.
var Builtins = map[string]func() Model{
	"sentiment": func() Model { return sentimentModel{} },
}

// BuiltinNames returns the names in Builtins, sorted.
func BuiltinNames() []string {
	names := make([]string, 0, len(Builtins))
	for name := range Builtins {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// ServeBuiltin serves the built-in model name as a go-plugin gRPC plugin and
// returns when the host shuts it down. An unknown name is an error returned
// before anything is written to stdout (stdout carries the handshake line).
// Started by hand, without the host's handshake cookie, go-plugin prints a
// notice to stderr and exits the process with status 1.
func ServeBuiltin(name string) error {
	newModel, ok := Builtins[name]
	if !ok {
		return fmt.Errorf("plugins: unknown built-in plugin %q (known: %s)", name, strings.Join(BuiltinNames(), ", "))
	}
	Serve(newModel())
	return nil
}

// Serve serves m as a healproxy model plugin over go-plugin gRPC and returns
// when the host shuts the plugin down. It is the one call a third-party
// plugin's main makes:
//
//	func main() { plugins.Serve(myModel{}) }
//
// Nothing may be written to stdout before Serve: the host reads the
// handshake from the plugin's first stdout line. Log to stderr, which the
// host logs under the model's key (hclog JSON lines keep their level).
func Serve(m Model) {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         plugin.PluginSet{PluginName: &ModelPlugin{Impl: m}},
		GRPCServer:      plugin.DefaultGRPCServer,
		Logger: hclog.New(&hclog.LoggerOptions{
			Name:       "plugin",
			Level:      hclog.Warn,
			Output:     os.Stderr,
			JSONFormat: true,
		}),
	})
}

// sentimentModel is the built-in "sentiment" model: crypto text labelled
// bullish, bearish or neutral by sentiment.Analyze.
type sentimentModel struct{}

func (sentimentModel) Predict(ctx context.Context, inputs []string) ([][]LabelScore, error) {
	out := make([][]LabelScore, len(inputs))
	for i, text := range inputs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		scores := sentiment.Analyze(text)
		ls := make([]LabelScore, len(scores))
		for j, s := range scores {
			ls[j] = LabelScore{Label: s.Label, Score: s.Score}
		}
		sort.SliceStable(ls, func(a, b int) bool { return ls[a].Score > ls[b].Score })
		out[i] = ls
	}
	return out, nil
}

func (sentimentModel) Info(context.Context) (Info, error) {
	return Info{Name: "sentiment", Version: "1", Labels: []string{"bullish", "bearish", "neutral"}}, nil
}

func (sentimentModel) Health(context.Context) error { return nil }

// Interface guards.
var _ Model = sentimentModel{}

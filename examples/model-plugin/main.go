// Command model-plugin is a third-party healproxy model plugin: a tiny
// keyword model that labels market talk "fear" or "greed". It shows the
// whole plugin contract: implement plugins.Model, call plugins.Serve from
// main, and write nothing to stdout before that.
//
// Build it with
//
//	go build -o examples/model-plugin/model-plugin ./examples/model-plugin
//
// and load it with examples/model-plugin.hcl.
package main

import (
	"context"
	"strings"

	"github.com/healproxy/healproxy/plugins"
)

var keywords = map[string][]string{
	"fear":  {"crash", "dump", "panic", "sell", "scared", "rekt", "capitulation", "liquidated", "bear"},
	"greed": {"moon", "pump", "ath", "buy", "fomo", "lambo", "rally", "breakout", "bull"},
}

type fearGreed struct{}

func (fearGreed) Predict(ctx context.Context, inputs []string) ([][]plugins.LabelScore, error) {
	out := make([][]plugins.LabelScore, len(inputs))
	for i, text := range inputs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		fear, greed := 1.0, 1.0 // add-one smoothing: no keyword → 0.5 / 0.5
		for _, w := range strings.Fields(strings.ToLower(text)) {
			w = strings.Trim(w, ".,!?;:\"'()")
			for _, k := range keywords["fear"] {
				if strings.HasPrefix(w, k) {
					fear++
				}
			}
			for _, k := range keywords["greed"] {
				if strings.HasPrefix(w, k) {
					greed++
				}
			}
		}
		f, g := fear/(fear+greed), greed/(fear+greed)
		if f > g {
			out[i] = []plugins.LabelScore{{Label: "fear", Score: f}, {Label: "greed", Score: g}}
		} else {
			out[i] = []plugins.LabelScore{{Label: "greed", Score: g}, {Label: "fear", Score: f}}
		}
	}
	return out, nil
}

func (fearGreed) Info(context.Context) (plugins.Info, error) {
	return plugins.Info{Name: "fear-greed", Version: "0.1.0", Labels: []string{"fear", "greed"}}, nil
}

func (fearGreed) Health(context.Context) error { return nil }

func main() { plugins.Serve(fearGreed{}) }

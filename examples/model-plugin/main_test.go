package main

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/healproxy/healproxy/plugins"
)

// TestMain runs main (the plugin) when started by the test below, so the
// test exercises the real subprocess path without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("HEALPROXY_EXAMPLE_PLUGIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestPluginSubprocess(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	p, err := plugins.Start(ctx, plugins.Spec{
		Key:     "fear_greed",
		Command: []string{os.Args[0]},
		Env:     []string{"HEALPROXY_EXAMPLE_PLUGIN=1"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()

	preds, err := p.Model().Predict(ctx, []string{"panic selling, everyone is rekt", "BTC to the moon, FOMO buying", "the weather is fine"})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"fear", "greed", "greed"} { // a tie goes to greed
		if g := preds[i][0].Label; g != want {
			t.Errorf("input %d: got %q; want %q (%v)", i, g, want, preds[i])
		}
	}
	info, err := p.Model().Info(ctx)
	if err != nil || info.Name != "fear-greed" {
		t.Errorf("Info = %+v, %v", info, err)
	}
}

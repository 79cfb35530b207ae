package plugins

import (
	"context"
	"testing"

	"github.com/healproxy/healproxy/plugins/sentiment"
)

const benchText = "BTC just broke out to a new all time high, bulls are back 🚀"

// BenchmarkPredictPlugin is one Predict of one input through a real plugin
// subprocess (gRPC over a Unix socket with mTLS).
func BenchmarkPredictPlugin(b *testing.B) {
	p := startTest(b, "sentiment")
	m := p.Model()
	ctx := context.Background()
	inputs := []string{benchText}
	for b.Loop() {
		if _, err := m.Predict(ctx, inputs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPredictInProcess is sentiment.Analyze called directly.
func BenchmarkPredictInProcess(b *testing.B) {
	for b.Loop() {
		if s := sentiment.Analyze(benchText); len(s) == 0 {
			b.Fatal("no scores")
		}
	}
}

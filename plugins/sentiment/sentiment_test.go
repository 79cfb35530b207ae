package sentiment

import (
	"bufio"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

type example struct{ label, text string }

func loadTSV(t testing.TB, name string) []example {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []example
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		label, text, ok := strings.Cut(sc.Text(), "\t")
		if !ok || (label != Bullish && label != Bearish && label != Neutral) {
			t.Fatalf("%s:%d: want label<TAB>text, got %q", name, line, sc.Text())
		}
		out = append(out, example{label, text})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func top(text string) string { return Analyze(text)[0].Label }

// TestAccuracy measures accuracy and per-label precision/recall on the
// hand-labelled tuning set and on the held-out set that was never tuned on.
// The floors are a few points below the accuracy measured when the lexicon
// was frozen. Set SENTIMENT_ERRORS=labelled (or heldout) to list mistakes.
func TestAccuracy(t *testing.T) {
	for _, c := range []struct {
		file  string
		floor float64
	}{
		{"labelled.tsv", 0.94},
		{"heldout.tsv", 0.88},
	} {
		t.Run(strings.TrimSuffix(c.file, ".tsv"), func(t *testing.T) {
			data := loadTSV(t, c.file)
			min := map[string]int{Bullish: 0, Bearish: 0, Neutral: 0}
			tp, fp, fn := map[string]int{}, map[string]int{}, map[string]int{}
			correct := 0
			show := os.Getenv("SENTIMENT_ERRORS") == strings.TrimSuffix(c.file, ".tsv")
			for _, ex := range data {
				min[ex.label]++
				got := top(ex.text)
				if got == ex.label {
					correct++
					tp[got]++
					continue
				}
				fp[got]++
				fn[ex.label]++
				if show {
					pos, neg := evidence(ex.text)
					t.Logf("want %s got %s (pos %.2f neg %.2f): %s", ex.label, got, pos, neg, ex.text)
				}
			}
			acc := float64(correct) / float64(len(data))
			t.Logf("%s: n=%d accuracy=%.3f", c.file, len(data), acc)
			for _, l := range Labels {
				p := ratio(tp[l], tp[l]+fp[l])
				r := ratio(tp[l], tp[l]+fn[l])
				t.Logf("  %-8s n=%3d precision=%.3f recall=%.3f", l, min[l], p, r)
			}
			if acc < c.floor {
				t.Errorf("accuracy %.3f below floor %.2f", acc, c.floor)
			}
		})
	}
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func TestLabelled(t *testing.T) {
	cases := []struct {
		name, text, want string
	}{
		// must hold
		{"must/moon", "Bitcoin is bullish! To the moon, buying more", Bullish},
		{"must/crash", "Massive crash, rug pull, everyone is dumping", Bearish},
		{"must/rally", "Bitcoin is bullish, strong rally", Bullish},
		{"must/pump", "bitcoin pump, bullish", Bullish},
		// phrases before words
		{"phrase/buy the dip", "buy the dip", Bullish},
		{"phrase/sell-off", "another sell-off", Bearish},
		{"phrase/sell off", "sell off everywhere", Bearish},
		{"phrase/all time high", "bitcoin at an all-time high", Bullish},
		{"phrase/bear market", "we are in a bear market", Bearish},
		{"phrase/bull run", "the bull run starts now", Bullish},
		{"phrase/short squeeze", "short squeeze incoming", Bullish},
		{"phrase/hard fork", "hard fork scheduled for block 800000", Neutral},
		// negation
		{"neg/not bullish", "I'm not bullish", Bearish},
		{"neg/isn't going to crash", "BTC isn't going to crash", Bullish},
		{"neg/no longer", "no longer bullish on this coin", Bearish},
		{"neg/never", "it will never crash", Bullish},
		{"neg/never weak", "never selling", ""},
		{"neg/don't", "don't panic, hold", Bullish},
		{"neg/not a bear market", "this is not a bear market", Bullish},
		{"neg/clause ends", "not sure about alts, but BTC is bullish", Bullish},
		{"neg/first hit only", "never buying this garbage again", Bearish},
		{"neg/curly apostrophe", "it isn’t going to dump", Bullish},
		{"flip/is over", "the bull run is over", Bearish},
		{"flip/winter over", "crypto winter is over", Bullish},
		// neutral
		{"neutral/news", "Bitcoin ETF decision expected Thursday", Neutral},
		{"neutral/question", "How do I stake ETH?", Neutral},
		{"neutral/ticker", "$BTC $ETH $SOL", Neutral},
		{"neutral/empty", "", Neutral},
		{"neutral/space", " \t\n ", Neutral},
		{"neutral/punct", "!!! ??? ...", Neutral},
		{"neutral/balanced", "pump then dump", Neutral},
		// emoji and tokenization
		{"emoji/rocket", "🚀🚀", Bullish},
		{"emoji/bull", "$ETH 📈💎🙌", Bullish},
		{"emoji/skull", "my bags 📉💀", Bearish},
		{"emoji/blood", "alts 🩸🩸", Bearish},
		{"emoji/variation", "⚠️ 🚨", Bearish},
		{"token/hashtag", "#bullish #crypto", Bullish},
		{"token/ticker is not a word", "$PUMP", Neutral},
		{"token/elongated", "moooooon", Bullish},
		{"token/percent", "ETH down 12%", Bearish},
		{"token/caps", "CRASH", Bearish},
		{"hodl", "hodl", ""}, // anything but an error
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := Analyze(c.text)
			checkScores(t, c.text, s)
			if c.want != "" && s[0].Label != c.want {
				pos, neg := evidence(c.text)
				t.Errorf("Analyze(%q) = %v, want %s (pos %.2f neg %.2f)", c.text, s, c.want, pos, neg)
			}
		})
	}
}

// TestIntensity checks that modifiers move the winning probability the
// right way.
func TestIntensity(t *testing.T) {
	p := func(text, label string) float64 {
		for _, s := range Analyze(text) {
			if s.Label == label {
				return s.Score
			}
		}
		t.Fatalf("no %s in %q", label, text)
		return 0
	}
	stronger := []struct{ weak, strong, label string }{
		{"bullish", "very bullish", Bullish},
		{"bullish", "extremely bullish", Bullish},
		{"crash", "massive crash", Bearish},
		{"rally", "huge rally", Bullish},
		{"bullish", "bullish!!!", Bullish},
		{"eth is dumping", "eth is DUMPING", Bearish},
		{"dumping", "dumping hard", Bearish},
		{"slightly bullish", "bullish", Bullish},
		{"a bit bearish", "bearish", Bearish},
		{"kinda bullish", "bullish", Bullish},
		{"not bullish", "bearish", Bearish},
		{"rally", "rally 🚀", Bullish},
		{"is it bullish?", "it is bullish", Bullish},
		{"dump", "dump 💀", Bearish},
	}
	for _, c := range stronger {
		if w, s := p(c.weak, c.label), p(c.strong, c.label); !(s > w) {
			t.Errorf("P(%s | %q) = %.3f, want more than P(%s | %q) = %.3f", c.label, c.strong, s, c.label, c.weak, w)
		}
	}
	// no evidence is neutral with a clear margin.
	if s := Analyze("the meeting is on tuesday"); s[0].Label != Neutral || s[0].Score-s[1].Score < 0.4 {
		t.Errorf("no-evidence text: %v, want neutral with margin >= 0.4", s)
	}
}

func TestOrderAndTies(t *testing.T) {
	s := Analyze("")
	if s[0].Label != Neutral || s[1].Label != Bullish || s[2].Label != Bearish {
		t.Errorf("empty: got %v, want neutral then bullish, bearish (tie order)", s)
	}
	if s[1].Score != s[2].Score {
		t.Errorf("empty: bullish and bearish should tie: %v", s)
	}
	out := make([]Score, 3)
	probabilities(5, 5, out) // bullish and bearish logits tie
	if out[1].Label != Bullish || out[2].Label != Bearish {
		t.Errorf("tie: got %v, want bullish before bearish", out)
	}
}

func TestConcurrent(t *testing.T) {
	data := loadTSV(t, "labelled.tsv")
	want := make([]string, len(data))
	for i, ex := range data {
		want[i] = top(ex.text)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, ex := range data {
				if got := top(ex.text); got != want[i] {
					t.Errorf("concurrent Analyze(%q) = %s, want %s", ex.text, got, want[i])
				}
			}
		}()
	}
	wg.Wait()
}

func TestAllocs(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocation counts are not meaningful under -race or -short")
	}
	text := "$BTC breaking out!! Not selling a single sat, to the moon 🚀🚀 #bitcoin"
	Analyze(text) // warm the pool
	if n := testing.AllocsPerRun(200, func() { Analyze(text) }); n > 1.5 {
		t.Errorf("Analyze allocates %.1f times per call, want 1", n)
	}
}

func checkScores(t testing.TB, text string, s []Score) {
	t.Helper()
	if len(s) != 3 {
		t.Fatalf("Analyze(%q): %d scores, want 3", text, len(s))
	}
	seen := map[string]bool{}
	var sum float64
	for i, x := range s {
		if math.IsNaN(x.Score) || math.IsInf(x.Score, 0) || x.Score < 0 || x.Score > 1 {
			t.Fatalf("Analyze(%q): bad score %v", text, x)
		}
		if i > 0 && x.Score > s[i-1].Score {
			t.Fatalf("Analyze(%q): not sorted: %v", text, s)
		}
		seen[x.Label] = true
		sum += x.Score
	}
	if !seen[Bullish] || !seen[Bearish] || !seen[Neutral] {
		t.Fatalf("Analyze(%q): labels %v", text, s)
	}
	if math.Abs(sum-1) > 1e-9 {
		t.Fatalf("Analyze(%q): scores sum to %v", text, sum)
	}
}

func FuzzAnalyze(f *testing.F) {
	for _, s := range []string{
		"", "hodl", "Bitcoin is bullish! To the moon, buying more",
		"not not not bullish", "$", "#", "@", "$BTC-", "isn'", "’", "3.", "10%",
		"moooon!!!", "🚀\u200d🚀\ufe0f", "\xff\xfe", strings.Repeat("crash ", 500),
		strings.Repeat("but ", 100) + "bullish", "ALL CAPS RALLY", "sell-off -- - — rally",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		checkScores(t, text, Analyze(text))
	})
}

func BenchmarkAnalyze(b *testing.B) {
	text := "$BTC just broke out above 70k!! Not selling a single sat, shorts getting rekt. To the moon 🚀🚀 #bitcoin"
	b.ReportAllocs()
	for b.Loop() {
		Analyze(text)
	}
}

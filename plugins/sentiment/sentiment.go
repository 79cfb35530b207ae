// Package sentiment is healproxy's built-in crypto-sentiment model: an
// offline, deterministic lexicon scorer that labels short crypto text
// (tweets, headlines, chat messages) as bullish, bearish or neutral.
//
// # Method
//
// The text is tokenized into lower-cased words (apostrophes kept, hyphens
// split, "#tag" read as "tag"), $TICKER and @mention tokens (which never
// carry sentiment), numbers (flagged when followed by "%") and emoji. Clause
// punctuation (. , ; : ! ? and dashes) and newlines delimit clauses; a clause
// ending in "?" is a question.
//
// At each position the longest phrase from the lexicon is tried first (up to
// five tokens: "buy the dip", "rug pull", "all time high", "sell off" or
// "sell-off"), then the single word, then, for elongated words ("moooon"),
// the word with letter runs collapsed. Lexicon weights are hand-set on a
// rough scale of 1 (weak: "buy", "green", "down") to 3.5 (unambiguous:
// "rug pull", "to the moon"); positive is bullish, negative bearish. There
// are about 900 entries (660 words, 230 phrases, counting modifiers): crypto
// slang, market-structure and security-incident vocabulary, general positive
// and negative words, and emoji (🚀📈💎🙌 bullish, 📉💀🩸 bearish).
//
// Each hit is then adjusted:
//   - a negator ("not", "isn't", "never", "no longer", "don't", ...) flips
//     the first hit within the next six tokens of its clause and damps it to
//     0.74 of its size, so "not bullish" is mildly bearish and "isn't going
//     to crash" mildly bullish;
//   - pre-modifiers within three tokens scale it: intensifiers ("very",
//     "extremely", "massive", "huge") by 1.2 to 1.6, diminishers and hedges
//     ("slightly", "a bit", "kinda", "maybe", "could") by 0.5;
//   - post-modifiers scale the hit just before them ("dumping hard",
//     "bullish af"), and "is over"/"is done" reverse it ("the bull run is
//     over" is bearish, "crypto winter is over" bullish);
//   - a word in ALL CAPS in otherwise mixed-case text counts 1.25 times
//     (acronyms such as ATH or FUD excepted), evidence followed by a
//     percentage ("down 15%") 1.5 times, and evidence inside a question half;
//   - after "but"/"however" earlier evidence is halved and later evidence
//     counts 1.5 times; each "!" (up to four) adds 8% to all evidence.
//
// The positive evidence P and negative evidence N become three logits,
//
//	bullish = P − ½N,  bearish = N − ½P,  neutral = 1.6 + ½·min(P, N),
//
// and a softmax turns them into probabilities. Text without evidence is
// therefore neutral with probability ≈ 0.71, a single weak word does not
// move it, and evenly mixed evidence stays neutral.
//
// # Limits
//
// It is a bag of weighted phrases, not a language model. It does not
// understand sarcasm, irony, questions beyond damping, conditionals ("if BTC
// loses 60k we crash"), comparisons, who the subject is ("shorts are
// trapped" has no evidence; only the phrase "short squeeze" is known), or
// whether news is good for the price ("listed on", "unlock" are guesses).
// Words outside the lexicon count for nothing, so novel slang and idioms
// ("exit liquidity", "hand over fist") read as neutral. Negation reaches
// only the first hit in a fixed window. Weights were set by hand against a
// small hand-written set; they are not learned, and accuracy on real,
// noisier data will be lower than on the test files. English only.
package sentiment

import (
	"math"
	"sync"
	"unicode"
	"unicode/utf8"
)

// The model's labels.
const (
	Bullish = "bullish"
	Bearish = "bearish"
	Neutral = "neutral"
)

// Labels are the model's labels, in tie-break order.
var Labels = [...]string{Bullish, Bearish, Neutral}

// Score is one label with its probability.
type Score struct {
	Label string
	Score float64
}

// Model constants (see the package comment).
const (
	negFactor    = -0.74 // multiplier of a negated hit
	negWindow    = 6     // tokens after a negator that it can reach
	preWindow    = 3     // tokens after a pre-modifier that it can reach
	postWindow   = 2     // tokens a post-modifier can look back
	flipWindow   = 3     // tokens "is over" can look back
	capsBoost    = 1.25  // ALL CAPS word in mixed-case text
	percentBoost = 1.5   // hit followed by a percentage
	questionMul  = 0.5   // hit inside a question
	contrastPre  = 0.5   // evidence before "but"
	contrastPost = 1.5   // evidence after "but"
	exclaimStep  = 0.08  // per "!", at most maxExclaim of them
	maxExclaim   = 4
	crossWeight  = 0.5 // how much opposite evidence lowers a logit
	neutralBias  = 1.6 // neutral logit with no evidence
	conflictBias = 0.5 // neutral logit gain per unit of balanced evidence
)

// Analyze returns the three labels with probabilities that sum to 1, best
// first; ties are broken in the order bullish, bearish, neutral. Text with no
// evidence, including empty text, is neutral. Analyze is safe for concurrent
// use and allocates only the returned slice in the common case.
func Analyze(text string) []Score {
	pos, neg := evidence(text)
	out := make([]Score, 3)
	probabilities(pos, neg, out)
	return out
}

// probabilities fills out with the sorted softmax of the three logits.
func probabilities(pos, neg float64, out []Score) {
	l := [3]float64{
		pos - crossWeight*neg,
		neg - crossWeight*pos,
		neutralBias + conflictBias*math.Min(pos, neg),
	}
	m := math.Max(l[0], math.Max(l[1], l[2]))
	var sum float64
	for i := range l {
		l[i] = math.Exp(l[i] - m)
		sum += l[i]
	}
	for i := range l {
		out[i] = Score{Label: Labels[i], Score: l[i] / sum}
	}
	// stable insertion sort, descending: equal scores keep label order.
	for i := 1; i < 3; i++ {
		for j := i; j > 0 && out[j].Score > out[j-1].Score; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
}

// token kinds.
const (
	tWord uint8 = iota
	tTicker
	tNumber
	tEmoji
)

type token struct {
	start, end int32 // lower-cased text in scratch.buf
	kind       uint8
	brk        bool // a clause boundary precedes this token
	caps       bool // ALL CAPS word of at least three letters
	question   bool // inside a sentence that ends with '?'
	percent    bool // number directly followed by '%'
}

type scratch struct {
	buf  []byte
	toks []token
	key  []byte
}

// maxPooled bounds the scratch buffers (in bytes of text) that are reused.
const maxPooled = 64 << 10

var pool = sync.Pool{New: func() any {
	return &scratch{buf: make([]byte, 0, 512), toks: make([]token, 0, 64), key: make([]byte, 0, 64)}
}}

// scan state shared by the scorer.
type tally struct {
	pos, neg    float64
	preMul      float64
	preUntil    int
	negUntil    int
	contrastMul float64
	last        float64 // last hit, signed, after adjustments
	lastEnd     int     // token index of the last hit's final token
	clause      int     // clause number of the current token
	lastClause  int
}

func (t *tally) add(v float64) {
	if v > 0 {
		t.pos += v
	} else {
		t.neg -= v
	}
}

// evidence returns the total bullish and bearish evidence in text.
func evidence(text string) (pos, neg float64) {
	sc := pool.Get().(*scratch)
	defer func() {
		// do not keep the buffers of an unusually long text alive.
		if cap(sc.buf) <= maxPooled && cap(sc.toks) <= maxPooled/8 {
			pool.Put(sc)
		}
	}()
	exclaims, hasLower := sc.tokenize(text)
	toks := sc.toks
	t := tally{preMul: 1, preUntil: -1, negUntil: -1, contrastMul: 1, lastEnd: -10, lastClause: -1}

	for i := 0; i < len(toks); {
		tk := toks[i]
		if tk.brk {
			t.clause++
			t.preMul, t.preUntil, t.negUntil = 1, -1, -1
		}
		switch tk.kind {
		case tEmoji:
			if e, ok := lex.words[sc.text(tk)]; ok && e.kind == kValence {
				t.hit(e.v, i, tk.question)
			}
			i++
			continue
		case tWord:
		default:
			i++
			continue
		}

		e, n := sc.lookup(i)
		if n == 0 {
			if lex.contrast[sc.text(tk)] {
				t.pos *= contrastPre
				t.neg *= contrastPre
				t.contrastMul = contrastPost
				t.clause++
				t.preMul, t.preUntil, t.negUntil = 1, -1, -1
			}
			i++
			continue
		}
		switch e.kind {
		case kValence:
			v := e.v
			if n == 1 && tk.caps && hasLower && !e.acronym {
				v *= capsBoost
			}
			if i > t.preUntil {
				t.preMul = 1
			}
			v *= t.preMul
			t.preMul, t.preUntil = 1, -1
			if i <= t.negUntil {
				v *= negFactor
				t.negUntil = -1
			}
			if j := i + n; j < len(toks) && toks[j].percent && !toks[j].brk {
				v *= percentBoost
			}
			t.hit(v, i+n-1, tk.question)
		case kNegator:
			t.negUntil = i + n - 1 + negWindow
		case kModifier:
			if e.post != 0 && t.lastClause == t.clause && i-t.lastEnd <= postWindow {
				t.add(t.last * (e.post - 1))
				t.last *= e.post
				t.lastEnd = i + n - 1
			}
			if e.pre != 0 {
				if i > t.preUntil {
					t.preMul = 1
				}
				t.preMul *= e.pre
				t.preUntil = i + n - 1 + preWindow
			}
		case kFlipPost:
			if t.lastClause == t.clause && i-t.lastEnd <= flipWindow {
				t.add(-t.last)
				t.last *= e.v
				t.add(t.last)
				t.lastEnd = i + n - 1
			}
		}
		i += n
	}
	mul := 1 + exclaimStep*float64(min(exclaims, maxExclaim))
	return t.pos * mul, t.neg * mul
}

// hit records evidence v whose last token is end.
func (t *tally) hit(v float64, end int, question bool) {
	if question {
		v *= questionMul
	}
	v *= t.contrastMul
	t.add(v)
	t.last, t.lastEnd, t.lastClause = v, end, t.clause
}

func (sc *scratch) text(tk token) string {
	return string(sc.buf[tk.start:tk.end]) // converted only for map lookups
}

// lookup finds the lexicon entry starting at word token i, longest phrase
// first. It returns the number of tokens consumed, 0 if none matched.
func (sc *scratch) lookup(i int) (entry, int) {
	toks := sc.toks
	w := sc.buf[toks[i].start:toks[i].end]
	if maxN := lex.firstWord[string(w)]; maxN > 1 {
		// phrases are contiguous words within one clause.
		avail := 1
		for avail < maxN && i+avail < len(toks) && toks[i+avail].kind == tWord && !toks[i+avail].brk {
			avail++
		}
		for n := avail; n >= 2; n-- {
			sc.key = append(sc.key[:0], w...)
			for k := i + 1; k < i+n; k++ {
				sc.key = append(sc.key, ' ')
				sc.key = append(sc.key, sc.buf[toks[k].start:toks[k].end]...)
			}
			if e, ok := lex.phrases[string(sc.key)]; ok {
				return e, n
			}
		}
	}
	if e, ok := lex.words[string(w)]; ok {
		return e, 1
	}
	// elongated words: "moooon" -> "moon", "pumpppp" -> "pump".
	for _, keep := range [2]int{2, 1} {
		sc.key = collapseRuns(sc.key[:0], w, keep)
		if len(sc.key) != len(w) {
			if e, ok := lex.words[string(sc.key)]; ok {
				return e, 1
			}
		}
	}
	return entry{}, 0
}

// collapseRuns appends w to dst with every run of three or more equal bytes
// shortened to keep bytes.
func collapseRuns(dst, w []byte, keep int) []byte {
	for i := 0; i < len(w); {
		j := i
		for j < len(w) && w[j] == w[i] {
			j++
		}
		n := j - i
		if n >= 3 {
			n = keep
		}
		for k := 0; k < n; k++ {
			dst = append(dst, w[i])
		}
		i = j
	}
	return dst
}

func isEmoji(r rune) bool {
	return (r >= 0x1F000 && r <= 0x1FAFF && !(r >= 0x1F3FB && r <= 0x1F3FF)) ||
		(r >= 0x2190 && unicode.Is(unicode.So, r))
}

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' }

// tokenize fills sc.toks and sc.buf from text and returns the number of '!'
// and whether the text has any lower-case letter.
func (sc *scratch) tokenize(text string) (exclaims int, hasLower bool) {
	sc.buf, sc.toks = sc.buf[:0], sc.toks[:0]
	brk := false
	sentStart := 0 // first token of the current sentence
	endSentence := func(question bool) {
		if question {
			for k := sentStart; k < len(sc.toks); k++ {
				sc.toks[k].question = true
			}
		}
		sentStart = len(sc.toks)
		brk = true
	}
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRuneInString(text[i:])
		switch {
		case isWordRune(r) || ((r == '$' || r == '#' || r == '@') && i+size < len(text)):
			kind := tWord
			start := i
			if !isWordRune(r) {
				nr, _ := utf8.DecodeRuneInString(text[i+size:])
				if !isWordRune(nr) {
					i += size
					continue
				}
				switch {
				case r == '#':
				case r == '@' || unicode.IsLetter(nr):
					kind = tTicker
				default: // "$200M"
				}
				start = i + size
			}
			tk, next, lower := sc.word(text, start, kind)
			hasLower = hasLower || lower
			tk.brk = brk
			brk = false
			sc.toks = append(sc.toks, tk)
			i = next
			continue
		case isEmoji(r):
			s := len(sc.buf)
			sc.buf = utf8.AppendRune(sc.buf, r)
			sc.toks = append(sc.toks, token{start: int32(s), end: int32(len(sc.buf)), kind: tEmoji, brk: brk})
			brk = false
		case r == '!':
			exclaims++
			endSentence(false)
		case r == '?':
			endSentence(true)
		case r == '.' || r == '\n' || r == '…':
			endSentence(false)
		case r == ',' || r == ';' || r == ':' || r == '(' || r == ')' || r == '[' || r == ']' ||
			r == '—' || r == '–' || r == '|' || r == '"' || r == '“' || r == '”':
			brk = true
		case r == '-':
			// "sell-off" splits into a phrase; " - " separates clauses.
			if i == 0 || text[i-1] == ' ' || i+1 >= len(text) || text[i+1] == ' ' {
				brk = true
			}
		}
		i += size
	}
	endSentence(false)
	return exclaims, hasLower
}

// word reads one word-like token starting at byte start.
func (sc *scratch) word(text string, start int, kind uint8) (token, int, bool) {
	s := len(sc.buf)
	upper, lower, letters, digits := 0, 0, 0, 0
	i := start
	for i < len(text) {
		r, size := utf8.DecodeRuneInString(text[i:])
		switch {
		case isWordRune(r):
		case r == '\'' || r == '’':
			// keep inner apostrophes: "isn't", "we're".
			nr, _ := utf8.DecodeRuneInString(text[i+size:])
			if i+size >= len(text) || !unicode.IsLetter(nr) || letters == 0 {
				goto done
			}
			sc.buf = append(sc.buf, '\'')
			i += size
			continue
		case (r == '.' || r == ',') && digits > 0 && letters == 0 && i+1 < len(text) && text[i+1] >= '0' && text[i+1] <= '9':
			// "64,200", "3.1k"
			sc.buf = append(sc.buf, byte(r))
			i += size
			continue
		default:
			goto done
		}
		switch {
		case unicode.IsDigit(r):
			digits++
		case unicode.IsLetter(r):
			letters++
			if unicode.IsUpper(r) {
				upper++
			} else if unicode.IsLower(r) {
				lower++
			}
		}
		if r < utf8.RuneSelf {
			if 'A' <= r && r <= 'Z' {
				r += 'a' - 'A'
			}
			sc.buf = append(sc.buf, byte(r))
		} else {
			sc.buf = utf8.AppendRune(sc.buf, unicode.ToLower(r))
		}
		i += size
	}
done:
	tk := token{start: int32(s), end: int32(len(sc.buf)), kind: kind}
	if kind == tWord && letters == 0 {
		tk.kind = tNumber
	}
	if kind == tWord && letters >= 3 && upper == letters {
		tk.caps = true
	}
	if tk.kind == tNumber && i < len(text) && text[i] == '%' {
		tk.percent = true
	}
	return tk, i, lower > 0
}

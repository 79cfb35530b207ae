package sentiment

import "strings"

// entry kinds.
const (
	kValence  uint8 = iota // v is the signed evidence (+ bullish, - bearish)
	kNegator               // flips and damps the next sentiment hit in the clause
	kModifier              // pre scales the next hit, post scales the previous one
	kFlipPost              // reverses the previous hit ("the bull run is over")
	kNeutral               // consumes its tokens and does nothing ("hard fork")
)

type entry struct {
	v         float64 // valence (kValence) or factor (kFlipPost)
	pre, post float64 // kModifier factors; 0 means "not this role"
	kind      uint8
	acronym   bool // written in capitals by convention: no ALL-CAPS boost
}

// group lists '|'-separated terms (single words or space-separated phrases,
// lower case) sharing one weight.
type group struct {
	v     float64
	terms string
}

// valence is the crypto and general-purpose evidence lexicon. Positive weights
// are bullish, negative bearish. Rough scale: 3 = unambiguous and strong
// ("rug pull", "to the moon"), 2 = clearly directional ("rally", "dump"),
// 1 = weak or context dependent ("buy", "sell", "green"), below 1 = hints.
var valence = []group{
	// ---- bullish: crypto ----
	{3.2, "to the moon|to da moon|moon soon"},
	{3, "bullish|mooning|moonshot|parabolic|skyrocket|skyrocketing|skyrockets|skyrocketed|etf approval|etf approved|etf approvals"},
	{2.8, "all time high|all time highs|ath|aths|new ath|new high|new highs|record high|record highs|bull run|bull market|bull season|altseason|alt season|up only|wagmi|lfg|buy the dip|bought the dip|buying the dip|btfd|golden cross|diamond hands|short squeeze|game changer"},
	{2.5, "moon|moons|breakout|breakouts|breaking out|breaks out|broke out|break out|rally|rallies|rallying|rallied|surge|surges|surging|surged|soar|soars|soaring|soared|explodes|exploding|exploded|rip higher|send it|sent it|sending it|bottom is in|bottom's in|higher highs|higher high|higher lows|higher low|uptrend|outperform|outperforms|outperforming|outperformed|reclaim|reclaims|reclaiming|reclaimed|green candle|green candles|inflows|record inflows|bullish divergence|bull flag|cup and handle|never been better"},
	{2.2, "pump|pumps|pumping|pumped|adoption|adopts|adopted|approves|approved|approval|rebound|rebounds|rebounding|rebounded|recovery|gains|gem|gems|undervalued|going higher|much higher|load up|loading up|loaded up|loaded|accumulating|accumulation|accumulate|accumulated|stacking sats|stack sats|institutional demand|bear trap|markup|markup phase|above resistance|through resistance|breaks above|broke above|flipped resistance|new money"},
	{2, "bulls|bull|going long|buy signal|strong buy|whales buying|whales accumulating|support holding|support held|holding support|held support|squeeze|squeezed|squeezing|gaining|recovering|recovered|recover|optimistic|optimism|profit|profits|profitable|partnership|partnerships|mainnet|integrates|integration|custody launch|institutions buying|we are early|we're early|so early|still early"},
	{1.5, "hodl|hodling|hodled|hodlers|green|greens|up big|buying|bought|buy|buys|stacking|stacked|long|longs opened|bounce|bounced|bouncing|bounces|rise|rises|rising|rose|climb|climbs|climbing|climbed|gain|gained|momentum|strong|stronger|strongest|strength|upside|upgrade|upgraded|listing|listed on|launches|launched|growing|grows|grew|growth|demand|bid|bids|fomo|healthy|lower fees|fees down|cheap fees"},
	// ---- bearish: crypto ----
	{-3.5, "rug pull|rug pulled|rugpull|rugpulled|rug pulls|exit scam|ponzi scheme|pump and dump|going to zero|goes to zero|go to zero|to zero"},
	{-3, "bearish|rekt|rugged|rug|scam|scams|scammer|scammers|scammed|ponzi|fraud|fraudulent|bankrupt|bankruptcy|insolvent|insolvency|crash|crashes|crashed|crashing|bloodbath|blood bath|liquidated|death spiral|bear market|bear season|crypto winter|collapse|collapses|collapsed|collapsing|death cross|capitulation|capitulating|capitulate|capitulated|withdrawals halted|halts withdrawals|halted withdrawals|withdrawals frozen|withdrawals paused|ngmi|dead cat bounce"},
	{-2.5, "dump|dumps|dumping|dumped|plunge|plunges|plunging|plunged|plummet|plummets|plummeting|plummeted|tank|tanks|tanking|tanked|sell off|selloff|sell-off|sell offs|selloffs|bleeding|bleed|bleeds|bled|hack|hacks|hacked|hacker|hackers|exploit|exploits|exploited|drain|drains|drained|draining|stolen|steal|steals|stealing|phishing|delist|delisting|delisted|delists|depeg|depegs|depegged|depegging|loses its peg|lost its peg|lower lows|lower low|lower highs|lower high|downtrend|breakdown|breaks below|broke below|breaking below|below support|lost support|losing support|support broken|support lost|liquidations|liquidation|longs liquidated|selling pressure|panic selling|panic sell|panic|bagholder|bagholders|bag holder|bag holders|wrecked|disaster|catastrophe|catastrophic|contagion|crisis|outage|outages|vulnerability|exploitable|crack down|crackdown|cracks down|paper hands|weak hands|bull trap|fake pump|fake rally|worthless|garbage"},
	{-2, "bears|bear|fud|fear|sink|sinks|sinking|sank|slump|slumps|slumping|slumped|falling|fall|falls|fell|drop|drops|dropping|dropped|decline|declines|declining|declined|losses|loss|lost|lose|losing|loses|short|shorts opened|shorting|shorted|going short|sold everything|rejected|rejects|rejection|denied|denies|banned|ban|bans|sues|sued|lawsuit|charged|arrested|seized|frozen|freeze|halted|halts|halt|paused|outflows|outflow|unlock|unlocks|dilution|inflationary|red|reds|red candles|weak|weaker|weakness|ugly|brutal|pain|painful|dead|dying|dies|died|flee|flees|fleeing|fled|abandoned|vanished|chaos|trash|shitcoin|shitcoins|crush|crushed|crushing|heading lower|much lower|going lower|lower|down bad|rough|bloody|tough"},
	{-1.5, "done with|sell|sells|selling|sold|avoid|down|downside|resistance rejected|overvalued|bubble|risky|worried|worry|worries|concern|concerns|concerned|scary|afraid|nervous|warning|fake|fooled|ouch|sellers|whales selling|bags|rip"},
	// ---- general positive ----
	{2.5, "amazing|awesome|incredible|fantastic|excellent|outstanding|brilliant|perfect|perfectly|love|loving|loved|thrilled|excited|exciting|stoked|huge win"},
	{2, "great|success|successful|successfully|win|wins|winning|won|best|congrats|congratulations|happy|glad|confident|impressive|solid|boost|boosts|boosted|good news|great news|thriving|booming|boom"},
	{1.5, "good|nice|nicely|better|improve|improves|improving|improved|positive|well done|like|likes|cool|bright|promising|opportunity|smooth|smoothly|safe|secure|rich|wealth|easy money|free money"},
	// ---- general negative ----
	{-2.5, "terrible|horrible|awful|worst|nightmare|devastating|devastated|hate|disgusting|pathetic|ruined|ruin|doomed|doom|dumpster fire"},
	{-2, "bad|bad news|fail|fails|failed|failing|failure|problem|problems|trouble|broken|sad|angry|scared|lose money|lost money|negative|danger|dangerous|threat|critical|suffer|suffering|hurt|hurts|damage|mess|stuck"},
	{-1.5, "poor|worse|disappointing|disappointed|disappointment|uncertain|uncertainty|doubt|doubts|risk|risks|delay|delayed|delays|struggle|struggles|struggling|regret|boring|meh|sucks|expensive"},
	// ---- emoji ----
	{2.5, "🚀|🌕|🌝"},
	{2, "📈|🐂|🟢|🤑|💪|🔥|🎉|🥳|💹|⬆"},
	{1.5, "💎|🙌|💰|💸|👍|✅|😍|🤩|❤|💚|🔝|🆙|🥇|👑"},
	{-2.5, "💀|☠|🩸|📉"},
	{-2, "🐻|🔴|😭|😱|🤡|😢|😡|🤬|👎|💩|🔻|⬇|😰|😨|🪦|⚰"},
	{-1.5, "😬|😞|😔|😩|🥲|⚠|🚨|😤"},
}

// Plain tokens with no sentiment of their own that still must be matched as
// phrases so that a contained word does not fire ("hard fork", "bug fixes").
var neutralPhrases = "hard fork|hard forks|bug fix|bug fixes|bug bounty|not sure|not only|fear and greed|fear and greed index|greed index|short term|long term|long time|a long time|for long|how long|as long as|no matter|set up|back up|up to|what's up|whats up|sell side|buy side|red pill|green light|market maker|market makers|take profit|stop loss|dump truck|support ticket|customer support|tech support|supported|supports|rip current|hold on|on hold|drop in|drop by|airdrop|air drop|rate drop|fall back|ban list|bear in mind|too early|sat down|sit down|low fees|lowest fees"

// negators flip (and damp) the next sentiment hit in the same clause.
var negators = "not|no|never|nor|neither|without|hardly|barely any|cannot|can't|cant|won't|wont|don't|dont|doesn't|doesnt|didn't|didnt|isn't|isnt|aren't|arent|wasn't|wasnt|weren't|werent|ain't|aint|shouldn't|shouldnt|wouldn't|wouldnt|couldn't|couldnt|hasn't|hasnt|haven't|havent|hadn't|hadnt|mustn't|no longer|not anymore|nothing|nobody|none|no one|zero chance"

// pre-modifiers: multiply the next hit within preWindow tokens.
var intensifiers = []group{
	{1.6, "extreme|extremely|insanely|incredibly|ridiculously|absolutely|hugely|massively|enormously|never been more|never been so|most|super duper"},
	{1.4, "very|really|super|so|massive|huge|highly|heavily|heavy|seriously|totally|completely|utterly|mega|ultra|crazy|insane|strongly|truly|major|big|biggest|such|too|way|deeply|mad|hella|damn|fucking|freaking|wildly|brutally|sharply|significantly"},
	{1.2, "quite|pretty|more|even|further|much|real|serious|strong|another|yet another"},
	{0.5, "slightly|a bit|a little|a little bit|kinda|kind of|sort of|sorta|somewhat|marginally|mildly|minor|minimal|barely|partially|partly|a tad|little|bit|small|modest|modestly|fairly|maybe|might|possibly|perhaps|could|potential|potentially|rumor|rumored|rumour|allegedly|if"},
}

// post-modifiers: multiply the hit just before them.
var postModifiers = []group{
	{1.5, "af|big time|like crazy|hard|harder|bigly|massively|heavily|sharply|badly"},
	{1.3, "again|everywhere|all day|for real|for sure"},
}

// flipPosts reverse a hit just before them ("bull run is over", "winter is over").
var flipPosts = "is fake|are fake|is over|are over|is done|is finished|has ended|is ending|over now"

// "but"-like words: evidence before is halved, evidence after weighs 1.5x.
var contrastWords = "but|however|although|though|nevertheless|nonetheless"

type lexicon struct {
	words   map[string]entry
	phrases map[string]entry
	// firstWord maps the first word of every phrase to the longest phrase
	// length (in tokens) starting with it, so most tokens need one lookup.
	firstWord map[string]int
	contrast  map[string]bool
}

var lex = buildLexicon()

// maxPhrase is the longest phrase, in tokens.
const maxPhrase = 5

func splitTerms(s string) []string {
	var out []string
	for _, t := range strings.Split(s, "|") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

func buildLexicon() *lexicon {
	l := &lexicon{
		words:     make(map[string]entry, 1200),
		phrases:   make(map[string]entry, 400),
		firstWord: make(map[string]int, 300),
		contrast:  make(map[string]bool),
	}
	// set stores e under term unless merge says to combine it with an
	// existing entry; the first reading of a term wins otherwise.
	set := func(term string, e entry) {
		parts := strings.FieldsFunc(term, func(r rune) bool { return r == ' ' || r == '-' })
		if len(parts) == 0 {
			return
		}
		if len(parts) > maxPhrase {
			panic("sentiment: phrase too long: " + term)
		}
		m := l.words
		key := parts[0]
		if len(parts) > 1 {
			m = l.phrases
			key = strings.Join(parts, " ")
			if n := l.firstWord[parts[0]]; len(parts) > n {
				l.firstWord[parts[0]] = len(parts)
			}
		}
		old, dup := m[key]
		switch {
		case !dup:
			m[key] = e
		case old.kind == kModifier && e.kind == kModifier:
			if old.pre == 0 {
				old.pre = e.pre
			}
			if old.post == 0 {
				old.post = e.post
			}
			m[key] = old
		}
	}
	// Order matters: function words first, so that for example "not sure"
	// is a neutral phrase and "hard" is a modifier rather than evidence.
	for _, t := range splitTerms(negators) {
		set(t, entry{kind: kNegator})
	}
	for _, t := range splitTerms(neutralPhrases) {
		set(t, entry{kind: kNeutral})
	}
	for _, t := range splitTerms(flipPosts) {
		set(t, entry{kind: kFlipPost, v: -0.8})
	}
	for _, g := range postModifiers {
		for _, t := range splitTerms(g.terms) {
			set(t, entry{kind: kModifier, post: g.v})
		}
	}
	// Words that are evidence themselves ("strong") stay evidence; the
	// intensifier reading only applies to words not in the valence lexicon.
	for _, g := range valence {
		for _, t := range splitTerms(g.terms) {
			e := entry{kind: kValence, v: g.v}
			switch t {
			case "ath", "aths", "wagmi", "ngmi", "lfg", "fud", "fomo", "hodl", "btfd", "rekt":
				e.acronym = true
			}
			set(t, e)
		}
	}
	for _, g := range intensifiers {
		for _, t := range splitTerms(g.terms) {
			set(t, entry{kind: kModifier, pre: g.v})
		}
	}
	for _, t := range splitTerms(contrastWords) {
		l.contrast[t] = true
	}
	return l
}

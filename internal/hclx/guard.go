package hclx

import (
	"fmt"
	"math/big"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// hcl's parser and evaluator are recursive and cty prints numbers in full,
// so a small file can crash the process (a fatal, unrecoverable stack
// overflow from ~100k nested brackets or unary operators) or keep it busy
// for minutes (a number such as 1e-99999 turned into a string). A real
// config needs none of that, so these limits are checked before and after
// parsing, and a file that breaks them is not decoded.
const (
	MaxFileSize = 1 << 20 // bytes; bounds the time any input can take
	maxNesting  = 64      // brackets, braces, parentheses, quotes, ${ } and %{ }
	maxUnaryRun = 16      // consecutive - and ! operators
	maxAbsNum   = 1e15    // largest number literal
	minAbsNum   = 1e-15
)

// CheckTokens enforces MaxFileSize, then maxNesting and maxUnaryRun with
// hcl's lexer, which is not recursive. Lexing errors are left to the parser.
func CheckTokens(src []byte, filename string) hcl.Diagnostics {
	if len(src) > MaxFileSize {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Config file too large",
			Detail:   fmt.Sprintf("The file has %d bytes; the limit is %d.", len(src), MaxFileSize),
		}}
	}
	toks, _ := hclsyntax.LexConfig(src, filename, hcl.InitialPos)
	depth, run := 0, 0
	for _, tok := range toks {
		switch tok.Type {
		case hclsyntax.TokenOBrace, hclsyntax.TokenOBrack, hclsyntax.TokenOParen,
			hclsyntax.TokenOQuote, hclsyntax.TokenOHeredoc,
			hclsyntax.TokenTemplateInterp, hclsyntax.TokenTemplateControl:
			depth++
			if depth > maxNesting {
				return hcl.Diagnostics{{
					Severity: hcl.DiagError,
					Summary:  "Nested too deeply",
					Detail:   fmt.Sprintf("A config may nest blocks, brackets and strings at most %d levels deep.", maxNesting),
					Subject:  tok.Range.Ptr(),
				}}
			}
		case hclsyntax.TokenCBrace, hclsyntax.TokenCBrack, hclsyntax.TokenCParen,
			hclsyntax.TokenCQuote, hclsyntax.TokenCHeredoc, hclsyntax.TokenTemplateSeqEnd:
			if depth > 0 {
				depth--
			}
		}
		switch tok.Type {
		case hclsyntax.TokenMinus, hclsyntax.TokenBang:
			run++
			if run > maxUnaryRun {
				return hcl.Diagnostics{{
					Severity: hcl.DiagError,
					Summary:  "Too many operators in a row",
					Detail:   fmt.Sprintf("At most %d - or ! operators may follow each other.", maxUnaryRun),
					Subject:  tok.Range.Ptr(),
				}}
			}
		case hclsyntax.TokenNewline, hclsyntax.TokenComment:
		default:
			run = 0
		}
	}
	return nil
}

// CheckExprs rejects arithmetic and number literals out of range, so that
// every number that can reach a string is short. It reports the outermost
// arithmetic expression only.
func CheckExprs(body hcl.Body) hcl.Diagnostics {
	sb, ok := body.(*hclsyntax.Body)
	if !ok {
		return nil
	}
	var reported *hcl.Range
	return hclsyntax.VisitAll(sb, func(n hclsyntax.Node) hcl.Diagnostics {
		rng := n.Range()
		if reported != nil && rng.Start.Byte >= reported.Start.Byte && rng.End.Byte <= reported.End.Byte {
			return nil
		}
		switch e := n.(type) {
		case *hclsyntax.BinaryOpExpr:
			switch e.Op {
			case hclsyntax.OpAdd, hclsyntax.OpSubtract, hclsyntax.OpMultiply, hclsyntax.OpDivide, hclsyntax.OpModulo:
				reported = &rng
				return hcl.Diagnostics{{
					Severity: hcl.DiagError,
					Summary:  "Arithmetic is not supported",
					Detail:   "Write the resulting value instead.",
					Subject:  rng.Ptr(),
				}}
			}
		case *hclsyntax.LiteralValueExpr:
			if e.Val.Type() != cty.Number || e.Val.IsNull() || !e.Val.IsKnown() {
				return nil
			}
			abs := new(big.Float).Abs(e.Val.AsBigFloat())
			if abs.Sign() != 0 && (abs.Cmp(big.NewFloat(maxAbsNum)) > 0 || abs.Cmp(big.NewFloat(minAbsNum)) < 0) {
				return hcl.Diagnostics{{
					Severity: hcl.DiagError,
					Summary:  "Number out of range",
					Detail:   fmt.Sprintf("Numbers must be 0 or between %g and %g in size.", minAbsNum, maxAbsNum),
					Subject:  rng.Ptr(),
				}}
			}
		}
		return nil
	})
}

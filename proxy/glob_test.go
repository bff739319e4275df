package proxy_test

import (
	"strings"
	"testing"
	"time"

	"github.com/dynakv/dynakv/proxy"
)

// matchCases are Redis stringmatchlen verdicts: the KEYS/SCAN cases of Redis's
// tests/unit/keyspace.tcl, the classic glob examples of the KEYS documentation, and
// the edge cases of util.c's class and escape handling.
var matchCases = []struct {
	pattern, s string
	want       bool
}{
	// KEYS documentation examples.
	{"h?llo", "hello", true},
	{"h?llo", "hallo", true},
	{"h?llo", "hxllo", true},
	{"h?llo", "hllo", false},
	{"h?llo", "heello", false},
	{"h*llo", "hllo", true},
	{"h*llo", "heeeello", true},
	{"h*llo", "hello world", false},
	{"h[ae]llo", "hello", true},
	{"h[ae]llo", "hallo", true},
	{"h[ae]llo", "hillo", false},
	{"h[^e]llo", "hallo", true},
	{"h[^e]llo", "hbllo", true},
	{"h[^e]llo", "hello", false},
	{"h[a-b]llo", "hallo", true},
	{"h[a-b]llo", "hbllo", true},
	{"h[a-b]llo", "hcllo", false},
	// keyspace.tcl: KEYS with pattern, KEYS with hashtag.
	{"foo*", "foo_a", true},
	{"foo*", "key_x", false},
	{"key*", "key_z", true},
	{"{a}*", "{a}x", true},
	{"{a}*", "{b}a", false},
	{"*{a}*", "x{a}y", true},
	// Stars.
	{"*", "anything", true},
	{"**", "x", true},
	{"a*", "a", true},
	{"a**", "a", true},
	{"*b", "ab", true},
	{"*b", "ba", false},
	{"a*b*c", "abbbbbc", true},
	{"a*b*c", "acb", false},
	{"*world*", "hello world again", true},
	{"h*o", "hello", true},
	{"h*o", "hellp", false},
	{"*a*b", "xaxxb", true},
	{"a*?", "a", false},
	{"a*?", "ab", true},
	{"?*", "a", true},
	// The empty string matches only the empty pattern (KEYS/SCAN short-circuit "*").
	{"", "", true},
	{"", "a", false},
	{"*", "", false},
	{"**", "", false},
	{"?", "", false},
	{"[^a]", "", false},
	// Escapes.
	{`h\*llo`, "h*llo", true},
	{`h\*llo`, "hello", false},
	{`\?`, "?", true},
	{`\?`, "a", false},
	{`\\`, `\`, true},
	{`\`, `\`, true}, // a lone trailing backslash is literal
	{`a\`, `a\`, true},
	{`\a`, "a", true},
	{`*\*`, "abc*", true},
	{`*\*`, "abc", false},
	// Classes.
	{"[abc]", "b", true},
	{"[abc]", "d", false},
	{"[abc]", "ab", false},
	{"[b-a]", "a", true}, // reversed ranges swap
	{"[z-a]x", "mx", true},
	{"[a-c-e]", "d", false}, // a-c, then '-', then 'e'
	{"[a-c-e]", "-", true},
	{"[a-c-e]", "e", true},
	{"[a-]", "_", true},  // the range a..']' (0x5d..0x61)
	{"[a-]", "-", false}, // not a literal '-' as in regexps
	{"[a-]", "b", false},
	{`[\]]`, "]", true},
	{`[\]]`, `\`, false},
	{`[\-]`, "-", true},
	{`[\-a]`, "a", true},
	{`[\^]`, "^", true},
	{"[]", "a", false},  // ']' right after '[' closes an empty class
	{"[]]", "]", false}, // ... so this is an empty class, then ']'
	{"[^]", "x", true},  // negated empty class: any byte
	{"[^]]", "x]", true},
	{"[^]]", "x", false},
	{"[^abc]", "d", true},
	{"[^abc]", "a", false},
	{"[^a-c]", "b", false},
	{"[^a-c]x", "dx", true},
	{"[?]", "?", true},
	{"[?]", "a", false},
	{"[*]", "*", true},
	{"[*]", "a", false},
	{"[[]", "[", true},
	// Unterminated classes run to the end of the pattern.
	{"[", "a", false},
	{"[", "[", false},
	{"[^", "a", true},
	{"[^", "ab", false},
	{"[a", "a", true},
	{"[a", "ab", false},
	{"[ab", "b", true},
	{"[a-", "-", true},
	{"[a-", "a", true},
	{"x[abc", "xc", true},
	{`[\`, `\`, true},
	{"*[", "a", false},
	{"a*[b", "axb", true},
	// Binary safety.
	{"a?c", "a\x00c", true},
	{"\x00*", "\x00\xff", true},
	{"[\x01-\x03]", "\x02", true},
	{"\xff", "\xff", true},
	{"?", "\xff", true},
}

func TestMatch(t *testing.T) {
	for _, tc := range matchCases {
		if got := proxy.Match(tc.pattern, []byte(tc.s)); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
		if got := refMatch(tc.pattern, []byte(tc.s)); got != tc.want {
			t.Errorf("refMatch(%q, %q) = %v, want %v (the oracle disagrees with the table)", tc.pattern, tc.s, got, tc.want)
		}
	}
}

// TestMatchAbusivePatterns ports keyspace.tcl's "Regression for pattern matching
// long nested loops" and "... very long nested loops". Before the skipLongerMatches
// port, the first took exponential time (12 stars against 40 bytes: over a minute).
func TestMatchAbusivePatterns(t *testing.T) {
	start := time.Now()
	if proxy.Match(strings.Repeat("a*", 20)+"b", []byte(strings.Repeat("a", 40))) {
		t.Error("nested stars matched")
	}
	if proxy.Match(strings.Repeat("*?", 50000), []byte(strings.Repeat("a", 50000))) {
		t.Error("50000 nested stars matched (Redis gives up past 1000 nestings)")
	}
	if !proxy.Match(strings.Repeat("a*", 20), []byte(strings.Repeat("a", 40))) {
		t.Error("a*a*...a* does not match a run of a's")
	}
	if !proxy.Match(strings.Repeat("*a", 500)+"*", []byte(strings.Repeat("a", 2000))) {
		t.Error("*a*a...* does not match")
	}
	// Generous: the exponential version needs hours, the polynomial one microseconds.
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("abusive patterns took %v", d)
	}
}

// FuzzMatch checks Match never panics and agrees with refMatch, a dynamic-programming
// matcher over the same token grammar (so it is polynomial by construction and shares
// no code with Match). Inputs are bounded so each call stays cheap: a regression to
// exponential backtracking shows up as the fuzzer stalling.
func FuzzMatch(f *testing.F) {
	for _, tc := range matchCases {
		f.Add(tc.pattern, []byte(tc.s))
	}
	f.Add(strings.Repeat("a*", 20)+"b", []byte(strings.Repeat("a", 40)))
	f.Fuzz(func(t *testing.T, pattern string, s []byte) {
		if len(pattern) > 64 || len(s) > 128 {
			t.Skip()
		}
		if got, want := proxy.Match(pattern, s), refMatch(pattern, s); got != want {
			t.Fatalf("Match(%q, %q) = %v, refMatch = %v", pattern, s, got, want)
		}
	})
}

// globTok is one element of a compiled Redis glob.
type globTok struct {
	kind byte // '*', '?', '[' (class) or 'c' (literal)
	c    byte
	not  bool
	set  [256]bool
}

// compileGlob tokenizes a pattern the way stringmatchlen reads it. How a class is
// read does not depend on the subject string, so a pattern is a token list.
func compileGlob(p string) []globTok {
	var toks []globTok
	for i := 0; i < len(p); {
		switch p[i] {
		case '*':
			toks = append(toks, globTok{kind: '*'})
			i++
		case '?':
			toks = append(toks, globTok{kind: '?'})
			i++
		case '[':
			i++
			t := globTok{kind: '['}
			if i < len(p) && p[i] == '^' {
				t.not = true
				i++
			}
			for i < len(p) { // running off the end: unterminated, ends the pattern
				if p[i] == '\\' && len(p)-i >= 2 {
					t.set[p[i+1]] = true
					i += 2
					continue
				}
				if p[i] == ']' {
					i++
					break
				}
				if len(p)-i >= 3 && p[i+1] == '-' {
					lo, hi := int(p[i]), int(p[i+2])
					if lo > hi {
						lo, hi = hi, lo
					}
					for c := lo; c <= hi; c++ {
						t.set[c] = true
					}
					i += 3
					continue
				}
				t.set[p[i]] = true
				i++
			}
			toks = append(toks, t)
		case '\\':
			if len(p)-i >= 2 {
				toks = append(toks, globTok{kind: 'c', c: p[i+1]})
				i += 2
			} else {
				toks = append(toks, globTok{kind: 'c', c: '\\'})
				i++
			}
		default:
			toks = append(toks, globTok{kind: 'c', c: p[i]})
			i++
		}
	}
	return toks
}

func (t globTok) matches(c byte) bool {
	switch t.kind {
	case '?':
		return true
	case '[':
		return t.set[c] != t.not
	}
	return t.c == c
}

// refMatch is the oracle: textbook glob DP over compileGlob's tokens, plus
// stringmatchlen's one quirk, that an empty subject matches only the empty pattern.
func refMatch(pattern string, s []byte) bool {
	if len(s) == 0 {
		return pattern == ""
	}
	toks := compileGlob(pattern)
	n, m := len(toks), len(s)
	// dp[i][j]: toks[i:] matches s[j:].
	dp := make([][]bool, n+1)
	for i := range dp {
		dp[i] = make([]bool, m+1)
	}
	dp[n][m] = true
	for i := n - 1; i >= 0; i-- {
		dp[i][m] = toks[i].kind == '*' && dp[i+1][m]
		for j := m - 1; j >= 0; j-- {
			if toks[i].kind == '*' {
				dp[i][j] = dp[i+1][j] || dp[i][j+1]
			} else {
				dp[i][j] = toks[i].matches(s[j]) && dp[i+1][j+1]
			}
		}
	}
	return dp[0][0]
}

package proxy

// Match reports whether s matches the Redis glob pattern: '*' any run, '?' one byte,
// '[abc]', '[^abc]', '[a-z]' classes, and '\' escaping the next byte. It is a port of
// Redis's stringmatchlen (util.c) with its edge cases: a ']' right after '[' closes
// an empty class ("[]" matches nothing, "[^]" any byte), a '\' inside a class
// escapes the next byte, a range may be written backwards ("[z-a]"), "[a-]" is the
// range a..']', an unterminated class runs to the end of the pattern, and a lone
// trailing '\' is a literal '\'. Bytes compare unsigned (Redis compares C chars,
// signed on x86, so a range with a byte >= 0x80 can differ there).
//
// Like stringmatchlen, an empty s matches only the empty pattern: Redis's KEYS and
// SCAN answer "*" without calling the matcher, so "*" finds the empty key there;
// callers that want that must short-circuit "*" too (Proxy.Scan does).
//
// The run time is polynomial: when the rest of the pattern after a '*' fails at every
// position of the rest of s, no earlier '*' can help by consuming more, and the whole
// match stops (Redis's skipLongerMatches, the fix for CVE-2022-36021). Recursion is
// bounded at 1000 nested '*', beyond which the match fails, as in Redis.
func Match(pattern string, s []byte) bool {
	skipLonger := false
	return match(pattern, s, &skipLonger, 0)
}

func match(pat string, s []byte, skipLonger *bool, nesting int) bool {
	if nesting > 1000 { // protection against abusive patterns, as in Redis
		return false
	}
	for len(pat) > 0 && len(s) > 0 {
		switch pat[0] {
		case '*':
			for len(pat) > 1 && pat[1] == '*' {
				pat = pat[1:]
			}
			if len(pat) == 1 {
				return true
			}
			for len(s) > 0 {
				if match(pat[1:], s, skipLonger, nesting+1) {
					return true
				}
				if *skipLonger {
					return false
				}
				s = s[1:]
			}
			// The rest of the pattern matches at no position of the rest of s: a
			// longer match for an earlier '*' cannot help either.
			*skipLonger = true
			return false
		case '?':
			s = s[1:]
		case '[':
			pat = pat[1:]
			not := len(pat) > 0 && pat[0] == '^'
			if not {
				pat = pat[1:]
			}
			matched, terminated := false, false
			for len(pat) > 0 {
				if pat[0] == '\\' && len(pat) >= 2 {
					pat = pat[1:]
					if pat[0] == s[0] {
						matched = true
					}
				} else if pat[0] == ']' {
					terminated = true
					break
				} else if len(pat) >= 3 && pat[1] == '-' {
					lo, hi := pat[0], pat[2]
					if lo > hi {
						lo, hi = hi, lo
					}
					if s[0] >= lo && s[0] <= hi {
						matched = true
					}
					pat = pat[2:]
				} else if pat[0] == s[0] {
					matched = true
				}
				pat = pat[1:]
			}
			if not {
				matched = !matched
			}
			if !matched {
				return false
			}
			s = s[1:]
			if !terminated {
				// Unterminated class: it ran to the end of the pattern.
				return len(s) == 0
			}
		case '\\':
			if len(pat) >= 2 {
				pat = pat[1:]
			}
			fallthrough
		default:
			if pat[0] != s[0] {
				return false
			}
			s = s[1:]
		}
		pat = pat[1:]
		if len(s) == 0 {
			for len(pat) > 0 && pat[0] == '*' {
				pat = pat[1:]
			}
			break
		}
	}
	return len(pat) == 0 && len(s) == 0
}

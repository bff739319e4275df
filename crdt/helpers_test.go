package crdt

import (
	"strconv"
	"strings"
	"testing"
)

// Test notation, so tables read like the papers.
//
// Context: "a:1-3,5 b:7" is a's dots 1, 2, 3 and 5 and b's dot 7.
// Field: "a1 b3=x c2+5 d4~0.5" is a flag entry for (a,1), a register (b,3) holding
// "x", an increment (c,2) of 5 and a float increment (d,4) of 0.5. A register may
// carry its time, "b3=x@7", and writes a space as "␠". A register's observed
// totals follow it in braces, "b3=x@7{c2+5,d4~0.5}"; "e5!{c2+5}" is a removal
// marker; "c6+7^4" is an increment whose chain began at (c,4).

func dot(s string) Dot {
	i := strings.IndexAny(s, "0123456789")
	n, err := strconv.ParseUint(s[i:], 10, 64)
	if err != nil || i <= 0 {
		panic("bad dot " + s)
	}
	return Dot{Actor: s[:i], Counter: n}
}

func dots(s string) []Dot {
	var out []Dot
	for f := range strings.FieldsSeq(s) {
		out = append(out, dot(f))
	}
	return out
}

func ctx(tb testing.TB, s string) Context {
	tb.Helper()
	var ds []Dot
	for f := range strings.FieldsSeq(s) {
		actor, runs, ok := strings.Cut(f, ":")
		if !ok {
			tb.Fatalf("bad context %q", s)
		}
		for r := range strings.SplitSeq(runs, ",") {
			lo, hi, isRun := strings.Cut(r, "-")
			if !isRun {
				hi = lo
			}
			l, err1 := strconv.ParseUint(lo, 10, 64)
			h, err2 := strconv.ParseUint(hi, 10, 64)
			if err1 != nil || err2 != nil || h < l || h-l > 1000 {
				tb.Fatalf("bad run %q in %q", r, s)
			}
			for n := l; n <= h; n++ {
				ds = append(ds, Dot{Actor: actor, Counter: n})
			}
		}
	}
	return ContextOf(ds...)
}

func field(s string) Field {
	var f Field
	for t := range strings.FieldsSeq(s) {
		var obs []Total
		if i := strings.IndexByte(t, '{'); i >= 0 && strings.HasSuffix(t, "}") {
			for o := range strings.SplitSeq(t[i+1:len(t)-1], ",") {
				if o != "" {
					e := incrEntry(o)
					obs = append(obs, Total{Dot: e.Dot, I: e.I, F: e.F, IsFloat: e.IsFloat})
				}
			}
			t = t[:i]
		}
		switch {
		case strings.HasSuffix(t, "!"):
			f = append(f, Entry{Dot: dot(t[:len(t)-1]), Kind: KindReg, Del: true, Obs: obs})
		case strings.Contains(t, "="):
			d, v, _ := strings.Cut(t, "=")
			e := Entry{Dot: dot(d), Kind: KindReg, Obs: obs}
			if i := strings.LastIndexByte(v, '@'); i >= 0 {
				e.TS, _ = strconv.ParseInt(v[i+1:], 10, 64)
				v = v[:i]
			}
			e.Data = []byte(strings.ReplaceAll(v, "␠", " "))
			f = append(f, e)
		case strings.ContainsAny(t, "+~"):
			f = append(f, incrEntry(t))
		default:
			f = append(f, Entry{Dot: dot(t), Kind: KindFlag})
		}
	}
	return f
}

// incrEntry parses an increment: "c2+5" (I), "d4~0.5" (F, IsFloat), "c2+5~0.5"
// (both), with "^3" at the end for its chain Base.
func incrEntry(t string) Entry {
	var e Entry
	e.Kind = KindIncr
	if i := strings.IndexByte(t, '^'); i >= 0 {
		e.Base, _ = strconv.ParseUint(t[i+1:], 10, 64)
		t = t[:i]
	}
	if i := strings.IndexByte(t, '~'); i >= 0 {
		e.F, _ = strconv.ParseFloat(t[i+1:], 64)
		e.IsFloat = true
		t = t[:i]
	}
	d, v, ok := strings.Cut(t, "+")
	if ok {
		e.I, _ = strconv.ParseInt(v, 10, 64)
	}
	e.Dot = dot(d)
	return e
}

func fmtField(f Field) string {
	var sb strings.Builder
	for i, e := range f {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(e.Dot.Actor + strconv.FormatUint(e.Dot.Counter, 10))
		switch e.Kind {
		case KindReg:
			if e.Del {
				sb.WriteString("!")
			} else {
				q := strconv.Quote(string(e.Data))
				sb.WriteString("=" + q[1:len(q)-1])
				if e.TS != 0 {
					sb.WriteString("@" + strconv.FormatInt(e.TS, 10))
				}
			}
			if len(e.Obs) > 0 {
				sb.WriteByte('{')
				for k, o := range e.Obs {
					if k > 0 {
						sb.WriteByte(',')
					}
					sb.WriteString(o.Dot.Actor + strconv.FormatUint(o.Dot.Counter, 10))
					writeTotals(&sb, o.I, o.F, o.IsFloat)
				}
				sb.WriteByte('}')
			}
		case KindIncr:
			writeTotals(&sb, e.I, e.F, e.IsFloat)
			if e.Base != 0 {
				sb.WriteString("^" + strconv.FormatUint(e.Base, 10))
			}
		case KindHLL:
			sb.WriteString("#hll")
		}
	}
	return sb.String()
}

func writeTotals(sb *strings.Builder, i int64, f float64, isFloat bool) {
	if i != 0 || !isFloat {
		sb.WriteString("+" + strconv.FormatInt(i, 10))
	}
	if isFloat || f != 0 {
		sb.WriteString("~" + strconv.FormatFloat(f, 'g', -1, 64))
	}
}

// checkField fails unless f is sorted by dot, each dot once, and covered by c.
func checkField(tb testing.TB, f Field, c Context) {
	tb.Helper()
	for i, e := range f {
		if i > 0 && f[i-1].Dot.Compare(e.Dot) >= 0 {
			tb.Fatalf("field %s not sorted or has a dot twice", fmtField(f))
		}
		if !c.Covers(e.Dot) {
			tb.Fatalf("field %s: dot %v not covered by its context %s", fmtField(f), e.Dot, c)
		}
	}
}

// checkContext fails unless c is in canonical form.
func checkContext(tb testing.TB, c Context) {
	tb.Helper()
	for i, a := range c.as {
		if i > 0 && c.as[i-1].actor >= a.actor {
			tb.Fatalf("context %s: actors out of order", c)
		}
		if len(a.runs) == 0 {
			tb.Fatalf("context %s: actor %q without runs", c, a.actor)
		}
		for k, r := range a.runs {
			if r.lo == 0 || r.hi < r.lo || (k > 0 && r.lo <= a.runs[k-1].hi+1) {
				tb.Fatalf("context %s: bad runs for %q: %v", c, a.actor, a.runs)
			}
		}
	}
}

package memcache

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestScripts runs the conversations in testdata/*.txt, each against a fresh server
// (fake clock at testEpoch, 1 MiB values). A script is a story of lines:
//
//	# comment
//	> text        send text and "\r\n" (Go escapes: \r \n \t \\ \xNN)
//	>raw text     send text exactly
//	< text        expect one reply line: text and "\r\n". $name matches digits and
//	              binds them; a bound $name in later lines stands for its value
//	closed        expect the server to close the connection (after any bytes)
//	reconnect     open a new connection
//	clock +10s    advance the fake clock (a Go duration); clock =<unix> sets it
//	limits <maxValueBytes>   (first line only) the value limit of the script's server
func TestScripts(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			runScript(t, f)
		})
	}
}

var captureRE = regexp.MustCompile(`\$[a-zA-Z][a-zA-Z0-9_]*`)

func unescape(t *testing.T, pos, s string) string {
	t.Helper()
	u, err := strconv.Unquote(`"` + strings.ReplaceAll(s, `"`, `\"`) + `"`)
	if err != nil {
		t.Fatalf("%s: bad escapes in %q: %v", pos, s, err)
	}
	return u
}

func runScript(t *testing.T, path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	opt := serverOptions{}
	if len(lines) > 0 && strings.HasPrefix(lines[0], "limits ") {
		n, err := strconv.Atoi(strings.TrimPrefix(lines[0], "limits "))
		if err != nil {
			t.Fatalf("%s:1: %v", path, err)
		}
		opt.maxValueBytes = n
		lines = lines[1:]
	}
	ts := startServer(t, opt)
	c := dialRaw(t, ts.addr)
	open := true
	vars := map[string]string{}
	subst := func(s string) string {
		return captureRE.ReplaceAllStringFunc(s, func(m string) string {
			if v, ok := vars[m[1:]]; ok {
				return v
			}
			return m
		})
	}
	for i, line := range lines {
		pos := path + ":" + strconv.Itoa(i+1)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, ">raw "):
			c.send(subst(unescape(t, pos, line[len(">raw "):])))
		case strings.HasPrefix(line, "> "):
			c.send(subst(unescape(t, pos, line[2:])) + "\r\n")
		case line == ">":
			c.send("\r\n")
		case strings.HasPrefix(line, "< ") || line == "<":
			want := unescape(t, pos, strings.TrimPrefix(strings.TrimPrefix(line, "<"), " ")) + "\r\n"
			got := c.line()
			if !matchLine(want, got, vars) {
				t.Fatalf("%s: got %q, want %q", pos, got, want)
			}
		case line == "closed":
			if rest := c.expectClosed(); rest != "" {
				t.Fatalf("%s: unexpected bytes before close: %q", pos, rest)
			}
			open = false
		case line == "reconnect":
			c, open = dialRaw(t, ts.addr), true
		case strings.HasPrefix(line, "clock +"):
			d, err := time.ParseDuration(line[len("clock +"):])
			if err != nil {
				t.Fatalf("%s: %v", pos, err)
			}
			ts.clock.Advance(d)
		case strings.HasPrefix(line, "clock ="):
			u, err := strconv.ParseInt(line[len("clock ="):], 10, 64)
			if err != nil {
				t.Fatalf("%s: %v", pos, err)
			}
			ts.clock.Set(time.Unix(u, 0))
		default:
			t.Fatalf("%s: cannot parse %q", pos, line)
		}
	}
	if !open {
		return
	}
	// Nothing unexpected may follow the last expected line.
	c.send("mn\r\n")
	if got := c.line(); got != "MN\r\n" {
		t.Fatalf("%s: unexpected trailing reply %q", path, got)
	}
}

// matchLine compares a reply line with an expectation holding $captures.
func matchLine(want, got string, vars map[string]string) bool {
	names := []string{}
	var re strings.Builder
	re.WriteString("^")
	last := 0
	for _, m := range captureRE.FindAllStringIndex(want, -1) {
		re.WriteString(regexp.QuoteMeta(want[last:m[0]]))
		name := want[m[0]+1 : m[1]]
		if v, ok := vars[name]; ok {
			re.WriteString(regexp.QuoteMeta(v))
		} else {
			re.WriteString("([0-9]+)")
			names = append(names, name)
		}
		last = m[1]
	}
	re.WriteString(regexp.QuoteMeta(want[last:]))
	re.WriteString("$")
	sub := regexp.MustCompile(re.String()).FindStringSubmatch(got)
	if sub == nil {
		return false
	}
	for i, n := range names {
		vars[n] = sub[i+1]
	}
	return true
}

package ring

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.txt with the actual output")

// TestScripts runs the placement stories in testdata/*.txt. Each case is a command
// line, a line "----", the expected output, and a blank line. Lines starting with #
// between cases are comments. Commands:
//
//	ring q=<Q> name[:weight][@zone]...
//	                             build a ring, remember the previous one, print every
//	                             preference list and the primary counts
//	diff [n=<n>]                 print the lists that changed since the previous ring;
//	                             with n, only changes to the first n (the replicas)
//	replicas p=<p> n=<n>         print Replicas(p, n)
//	fallback p=<p> n=<n> owner [dead...]
//	                             print Fallback(p, n, owner, usable), usable being
//	                             "not one of dead"
//	partition q=<Q> key...       print PartitionOf(key, Q) for each key
//
// Run with -update to rewrite the expected output after an intended change. Any
// change to a ring case moves data in a real cluster.
func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) { runScript(t, file) })
	}
}

func runScript(t *testing.T, file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	var out strings.Builder
	var prev, cur *Ring
	for i := 0; i < len(lines); {
		line := lines[i]
		if line == "" || strings.HasPrefix(line, "#") {
			out.WriteString(line + "\n")
			i++
			continue
		}
		cmdLine := i + 1
		i++
		if i >= len(lines) || lines[i] != "----" {
			t.Fatalf("%s:%d: command %q not followed by ----", file, cmdLine, line)
		}
		i++
		var want []string
		for ; i < len(lines) && lines[i] != ""; i++ {
			want = append(want, lines[i])
		}
		got, err := runCommand(line, &prev, &cur)
		if err != nil {
			t.Fatalf("%s:%d: %s: %v", file, cmdLine, line, err)
		}
		if !*update && got != strings.Join(want, "\n") {
			t.Errorf("%s:%d: %s\ngot:\n%s\nwant:\n%s", file, cmdLine, line, got, strings.Join(want, "\n"))
		}
		fmt.Fprintf(&out, "%s\n----\n%s\n", line, got)
	}
	if *update {
		if err := os.WriteFile(file, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func runCommand(line string, prev, cur **Ring) (string, error) {
	fields := strings.Fields(line)
	args := map[string]int{}
	var rest []string
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(f, "=")
		if n, err := strconv.Atoi(v); ok && err == nil {
			args[k] = n
		} else {
			rest = append(rest, f)
		}
	}
	var b strings.Builder
	switch fields[0] {
	case "ring":
		var ms []Member
		for _, f := range rest {
			f, zone, _ := strings.Cut(f, "@")
			name, w, _ := strings.Cut(f, ":")
			weight := 0.0
			if w != "" {
				var err error
				if weight, err = strconv.ParseFloat(w, 64); err != nil {
					return "", err
				}
			}
			ms = append(ms, Member{Name: name, Weight: weight, Zone: zone})
		}
		r, err := New(args["q"], ms)
		if err != nil {
			return err.Error(), nil
		}
		*prev, *cur = *cur, r
		for p := range r.Partitions() {
			fmt.Fprintf(&b, "p%d: %s\n", p, strings.Join(r.PreferenceList(p), " "))
		}
		b.WriteString("primaries:")
		for _, m := range r.Members() {
			fmt.Fprintf(&b, " %s=%d", m.Name, r.PrimaryCounts()[m.Name])
		}
	case "diff":
		if *prev == nil || *cur == nil || (*prev).Partitions() != (*cur).Partitions() {
			return "", fmt.Errorf("diff needs two rings with the same Q")
		}
		moved := 0
		for p := range (*cur).Partitions() {
			a, c := (*prev).PreferenceList(p), (*cur).PreferenceList(p)
			if n, ok := args["n"]; ok {
				a, c = (*prev).Replicas(p, n), (*cur).Replicas(p, n)
			}
			if slices.Equal(a, c) {
				continue
			}
			mark := ""
			if len(a) == 0 || len(c) == 0 || a[0] != c[0] {
				mark = " (primary moved)"
				moved++
			}
			fmt.Fprintf(&b, "p%d: %s -> %s%s\n", p, strings.Join(a, " "), strings.Join(c, " "), mark)
		}
		fmt.Fprintf(&b, "primaries moved: %d/%d", moved, (*cur).Partitions())
	case "replicas":
		if *cur == nil {
			return "", fmt.Errorf("no ring")
		}
		fmt.Fprintf(&b, "%v", (*cur).Replicas(args["p"], args["n"]))
	case "fallback":
		if *cur == nil || len(rest) == 0 {
			return "", fmt.Errorf("fallback needs a ring and an owner")
		}
		dead := rest[1:]
		got := (*cur).Fallback(args["p"], args["n"], rest[0], func(name string) bool { return !slices.Contains(dead, name) })
		fmt.Fprintf(&b, "%q", got)
	case "partition":
		for i, k := range rest {
			if i > 0 {
				b.WriteString("\n")
			}
			fmt.Fprintf(&b, "%q -> %d", k, PartitionOf([]byte(k), args["q"]))
		}
	default:
		return "", fmt.Errorf("unknown command %q", fields[0])
	}
	return strings.TrimRight(b.String(), "\n"), nil
}

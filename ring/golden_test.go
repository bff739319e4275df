package ring

import (
	"crypto/sha256"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// goldenSet is one member set of testdata/zoneless.golden.
type goldenSet struct {
	line    int // of the q= line, for messages
	q       int
	members []Member
	sum     string // "sha256:<hex>"
}

// readGolden parses testdata/zoneless.golden: comment and blank lines, then
// pairs of lines "q=<Q> name[:weight]..." and "sha256:<hex>".
func readGolden(t *testing.T, file string) (lines []string, sets []goldenSet) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines = strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		fields := strings.Fields(l)
		q, err := strconv.Atoi(strings.TrimPrefix(fields[0], "q="))
		if err != nil || !strings.HasPrefix(fields[0], "q=") || i+1 >= len(lines) ||
			!strings.HasPrefix(lines[i+1], "sha256:") {
			t.Fatalf("%s:%d: want \"q=<Q> members...\" then \"sha256:<hex>\"", file, i+1)
		}
		gs := goldenSet{line: i + 1, q: q, sum: lines[i+1]}
		for _, f := range fields[1:] {
			name, w, _ := strings.Cut(f, ":")
			m := Member{Name: name}
			if w != "" && !strings.Contains(name, ".") {
				if m.Weight, err = strconv.ParseFloat(w, 64); err != nil {
					t.Fatalf("%s:%d: %v", file, i+1, err)
				}
			} else {
				m.Name = f // an address such as 10.0.0.1:7947 is a name
			}
			gs.members = append(gs.members, m)
		}
		sets = append(sets, gs)
		i++
	}
	return lines, sets
}

// listsDigest is the sha256 of every preference list of r, one line per partition.
func listsDigest(r *Ring) string {
	h := sha256.New()
	for p := range r.Partitions() {
		fmt.Fprintln(h, strings.Join(r.PreferenceList(p), " "))
	}
	return fmt.Sprintf("sha256:%x", h.Sum(nil))
}

// TestGoldenZoneless pins today's placement for member sets without zones: the
// lists computed before zones existed, kept as digests in testdata.
func TestGoldenZoneless(t *testing.T) {
	const file = "testdata/zoneless.golden"
	lines, sets := readGolden(t, file)
	for _, gs := range sets {
		got := listsDigest(mustNew(t, gs.q, gs.members))
		if *update {
			lines[gs.line] = got
			continue
		}
		if got != gs.sum {
			t.Errorf("%s:%d: q=%d, %d members: placement changed: %s, want %s",
				file, gs.line, gs.q, len(gs.members), got, gs.sum)
		}
	}
	if *update {
		if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

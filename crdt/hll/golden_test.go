package hll

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestGolden replays testdata/golden.txt, recorded from redis-server 7.0.15 by
// testdata/gen (see its doc for the format and how to regenerate), and checks
// that every reply and every GET is byte for byte what Redis answered.
func TestGolden(t *testing.T) {
	f, err := os.Open("testdata/golden.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<22)
	db := map[string][]byte{}
	sparseMax := DefaultSparseMaxBytes
	n, gets := 0, 0
	for lineNo := 1; sc.Scan(); lineNo++ {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		cmdPart, want, ok := strings.Cut(line, " => ")
		if !ok {
			t.Fatalf("line %d: no reply: %.80s", lineNo, line)
		}
		args, err := tokenize(cmdPart)
		if err != nil {
			t.Fatalf("line %d: %v", lineNo, err)
		}
		got, err := replay(db, &sparseMax, args)
		if err != nil {
			t.Fatalf("line %d: %v", lineNo, err)
		}
		if got != want {
			t.Fatalf("line %d: %.120s\n got %.200s\nwant %.200s", lineNo, cmdPart, got, want)
		}
		n++
		if args[0] == "get" {
			gets++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 100 || gets < 50 {
		t.Fatalf("only %d commands (%d GETs) replayed", n, gets)
	}
}

// replay runs one golden command on db and formats the reply as gen does.
func replay(db map[string][]byte, sparseMax *int, args []string) (string, error) {
	reply := func(v int64, err error) string {
		if err != nil {
			return "ERR " + err.Error()
		}
		return strconv.FormatInt(v, 10)
	}
	bools := func(b bool) int64 {
		if b {
			return 1
		}
		return 0
	}
	switch cmd, a := args[0], args[1:]; cmd {
	case "config-sparse-max":
		v, err := strconv.Atoi(a[0])
		*sparseMax = v
		return "OK", err
	case "set":
		v, err := hex.DecodeString(a[1])
		db[a[0]] = v
		return "OK", err
	case "get":
		v, ok := db[a[0]]
		if !ok {
			return "nil", nil
		}
		return hex.EncodeToString(v), nil
	case "del":
		_, ok := db[a[0]]
		delete(db, a[0])
		return reply(bools(ok), nil), nil
	case "pfadd":
		elems := make([][]byte, len(a)-1)
		for i, e := range a[1:] {
			elems[i] = []byte(e)
		}
		out, changed, err := Add(db[a[0]], *sparseMax, elems...)
		if err == nil {
			db[a[0]] = out
		}
		return reply(bools(changed), err), nil
	case "pfaddn":
		start, err1 := strconv.Atoi(a[2])
		n, err2 := strconv.Atoi(a[3])
		per, err3 := strconv.Atoi(a[4])
		if err1 != nil || err2 != nil || err3 != nil {
			return "", fmt.Errorf("bad pfaddn %v", a)
		}
		var s strings.Builder
		for i := start; i < start+n; i += per {
			var elems [][]byte
			for j := i; j < min(i+per, start+n); j++ {
				elems = append(elems, []byte(a[1]+strconv.Itoa(j)))
			}
			out, changed, err := Add(db[a[0]], *sparseMax, elems...)
			if err != nil {
				return "", err
			}
			db[a[0]] = out
			s.WriteString(reply(bools(changed), nil))
		}
		return s.String(), nil
	case "pfcount":
		if len(a) == 1 {
			card, refreshed, err := Count(db[a[0]])
			if refreshed != nil {
				db[a[0]] = refreshed
			}
			return reply(int64(card), err), nil
		}
		vals := make([][]byte, len(a))
		for i, k := range a {
			vals[i] = db[k]
		}
		card, err := CountUnion(vals...)
		return reply(int64(card), err), nil
	case "pfdebug":
		v := db[a[1]]
		switch a[0] {
		case "decode":
			s, err := DebugDecode(v)
			if err != nil {
				return "ERR " + err.Error(), nil
			}
			return s, nil
		case "encoding":
			s, err := Encoding(v)
			if err != nil {
				return "ERR " + err.Error(), nil
			}
			return s, nil
		case "todense":
			out, conv, err := ToDense(v)
			if err == nil {
				db[a[1]] = out
			}
			return reply(bools(conv), err), nil
		}
	case "pfmerge":
		srcs := make([][]byte, len(a)-1)
		for i, k := range a[1:] {
			srcs[i] = db[k]
		}
		out, err := Merge(db[a[0]], *sparseMax, srcs...)
		if err != nil {
			return "ERR " + err.Error(), nil
		}
		db[a[0]] = out
		return "OK", nil
	}
	return "", fmt.Errorf("unknown command %q", args[0])
}

// tokenize splits a golden line into bare words and Go-quoted strings.
func tokenize(s string) ([]string, error) {
	var out []string
	for s = strings.TrimLeft(s, " "); s != ""; s = strings.TrimLeft(s, " ") {
		if s[0] == '"' {
			q, err := strconv.QuotedPrefix(s)
			if err != nil {
				return nil, err
			}
			u, _ := strconv.Unquote(q)
			out = append(out, u)
			s = s[len(q):]
			continue
		}
		w, rest, _ := strings.Cut(s, " ")
		out = append(out, w)
		s = rest
	}
	return out, nil
}

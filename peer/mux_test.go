package peer

import (
	"context"
	"errors"
	"testing"
)

func TestMuxDispatchesByType(t *testing.T) {
	m := NewMux()
	m.Handle(MsgRead, func(_ context.Context, from string, req []byte) ([]byte, error) {
		return append([]byte("read from "+from+": "), req...), nil
	})
	m.Handle(MsgRoots, func(context.Context, string, []byte) ([]byte, error) { return nil, errors.New("roots failed") })
	if rep, err := m.ServeCluster(context.Background(), "n2", uint8(MsgRead), []byte("k")); err != nil || string(rep) != "read from n2: k" {
		t.Fatalf("read: %q, %v", rep, err)
	}
	if _, err := m.ServeCluster(context.Background(), "n2", uint8(MsgRoots), nil); err == nil || err.Error() != "roots failed" {
		t.Fatalf("roots: %v", err)
	}
	for _, typ := range []MsgType{0, MsgWrite, MsgForward, 255} {
		_, err := m.ServeCluster(context.Background(), "n2", uint8(typ), []byte{version})
		if !errors.Is(err, ErrUnknownType) || !errors.Is(err, ErrBadMessage) {
			t.Errorf("type %d without a handler: %v", typ, err)
		}
	}
}

func TestMuxRefusesSecondHandler(t *testing.T) {
	var m Mux // the zero value is ready
	h := func(context.Context, string, []byte) ([]byte, error) { return nil, nil }
	m.Handle(MsgWrite, h)
	for name, register := range map[string]func(){
		"twice": func() { m.Handle(MsgWrite, h) },
		"nil":   func() { m.Handle(MsgRead, nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: Handle did not panic", name)
				}
			}()
			register()
		}()
	}
}

// TestMsgTypeNames: every registered type has a name of its own; others print
// their number.
func TestMsgTypeNames(t *testing.T) {
	seen := map[string]MsgType{}
	for typ, name := range msgNames {
		if other, dup := seen[name]; dup {
			t.Errorf("types %d and %d are both %q", typ, other, name)
		}
		seen[name] = typ
		if typ.String() != name {
			t.Errorf("%d.String() = %q", typ, typ.String())
		}
	}
	if s := MsgType(200).String(); s != "type 200" {
		t.Errorf("unknown type prints %q", s)
	}
}

package proxy_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/dynakv/dynakv/proxy"
)

// fullMemory is a proxy.Memory that refuses while full is set.
type fullMemory struct{ full atomic.Bool }

func (m *fullMemory) Admit(context.Context) error {
	if m.full.Load() {
		return proxy.ErrOOM
	}
	return nil
}

// TestMemoryGate: on a full node every op that may grow memory (Redis's denyoom)
// fails with ErrOOM and changes nothing, while deletes, expiry changes and reads
// run; once there is room again, writes run.
func TestMemoryGate(t *testing.T) {
	mem := &fullMemory{}
	e := newDirectEnv(t, proxy.Config{Memory: mem})
	k := []byte("k")
	e.do(proxy.Op{Kind: proxy.OpSet, Key: k, Value: []byte("7")})
	ctx := e.do(proxy.Op{Kind: proxy.OpDGet, Key: k}).Context
	mem.full.Store(true)
	for _, tc := range []struct {
		op    proxy.Op
		grows bool
	}{
		{proxy.Op{Kind: proxy.OpSet, Key: k, Value: []byte("v")}, true},
		{proxy.Op{Kind: proxy.OpSet, Key: []byte("new"), Value: []byte("v"), Cond: proxy.CondNX}, true},
		{proxy.Op{Kind: proxy.OpIncr, Key: k, Delta: 1}, true},
		{proxy.Op{Kind: proxy.OpIncrFloat, Key: k, Float: 1}, true},
		{proxy.Op{Kind: proxy.OpIncrUnsigned, Key: k, UDelta: 1}, true},
		{proxy.Op{Kind: proxy.OpAppend, Key: k, Value: []byte("1")}, true},
		{proxy.Op{Kind: proxy.OpSetRange, Key: k, Value: []byte("1")}, true},
		{proxy.Op{Kind: proxy.OpSetBit, Key: k, Offset: 1, Delta: 1}, true},
		{proxy.Op{Kind: proxy.OpDPut, Key: k, Value: []byte("v"), Context: ctx}, true},
		{proxy.Op{Kind: proxy.OpGet, Key: []byte("viv"), Vivify: true}, true},
		{proxy.Op{Kind: proxy.OpGet, Key: k}, false},
		{proxy.Op{Kind: proxy.OpDGet, Key: k}, false},
		{proxy.Op{Kind: proxy.OpExpire, Key: k, Persist: true}, false},
		{proxy.Op{Kind: proxy.OpGetEx, Key: k}, false},
	} {
		err := e.doErr(tc.op)
		if tc.grows != errors.Is(err, proxy.ErrOOM) {
			t.Errorf("%s on a full node: %v (grows %v)", opString(tc.op), err, tc.grows)
		}
	}
	e.mustValue("k", "7")
	if _, ok := e.get("new"); ok {
		t.Error("a refused SET NX created its key")
	}
	for _, op := range []proxy.Op{
		{Kind: proxy.OpGetDel, Key: k},
		{Kind: proxy.OpDelete, Key: []byte("other")},
		{Kind: proxy.OpDDel, Key: []byte("other"), Context: ctx},
	} {
		if err := e.doErr(op); err != nil {
			t.Errorf("%s on a full node: %v", opString(op), err)
		}
	}
	mem.full.Store(false)
	e.do(proxy.Op{Kind: proxy.OpSet, Key: k, Value: []byte("8")})
	e.mustValue("k", "8")
}

package deadline

import (
	"testing"
	"time"
)

type fakeConn struct {
	calls int
	at    time.Time
}

func (f *fakeConn) SetWriteDeadline(t time.Time) error {
	f.calls++
	f.at = t
	return nil
}

func TestArm(t *testing.T) {
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		wait    time.Duration // between the two Arms
		calls   int
	}{
		{"off", 0, 0, 0},
		{"negative is off", -time.Second, 0, 0},
		{"second arm within a tenth is free", time.Second, 0, 1},
		{"second arm after a tenth moves it", 100 * time.Millisecond, 20 * time.Millisecond, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c fakeConn
			w := Writer{Timeout: tc.timeout}
			start := time.Now()
			for i := range 2 {
				if i == 1 {
					time.Sleep(tc.wait)
				}
				if err := w.Arm(&c); err != nil {
					t.Fatal(err)
				}
				if tc.timeout > 0 {
					// The invariant: at least 0.9 × timeout ahead of now.
					if left := time.Until(c.at); left < tc.timeout*9/10 {
						t.Fatalf("arm %d: deadline %v ahead, want at least %v", i, left, tc.timeout*9/10)
					}
				}
			}
			if c.calls != tc.calls {
				t.Fatalf("%d SetWriteDeadline calls, want %d", c.calls, tc.calls)
			}
			if tc.timeout > 0 && c.at.Before(start.Add(tc.timeout)) {
				t.Fatalf("deadline %v before start+timeout", c.at.Sub(start))
			}
		})
	}
	var c fakeConn
	w := Writer{Timeout: time.Hour}
	_ = w.Arm(&c)
	w.Reset()
	_ = w.Arm(&c)
	if c.calls != 2 {
		t.Fatalf("after Reset: %d calls, want 2", c.calls)
	}
}

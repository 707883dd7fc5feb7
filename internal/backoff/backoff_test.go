package backoff

import (
	"context"
	"testing"
	"time"
)

func TestNextDoublesUpToMax(t *testing.T) {
	b := New(100*time.Millisecond, time.Second, None)
	var got []time.Duration
	for range 6 {
		got = append(got, b.Next())
	}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("waits %v, want %v ms", got, want)
		}
	}
	b.Reset()
	if d := b.Next(); d != 100*time.Millisecond {
		t.Errorf("after Reset: %v, want 100ms", d)
	}
}

func TestJitterBounds(t *testing.T) {
	for range 1000 {
		if d := New(time.Second, time.Second, Full).Next(); d <= 0 || d > time.Second {
			t.Fatalf("full jitter %v outside (0, 1s]", d)
		}
		if d := Delay(1, time.Second, time.Second, Half); d < time.Second/2 || d > time.Second {
			t.Fatalf("half jitter %v outside [0.5s, 1s]", d)
		}
	}
	if d := Delay(4, 200*time.Millisecond, 5*time.Second, None); d != 1600*time.Millisecond {
		t.Errorf("Delay(4) %v, want 1.6s", d)
	}
	if d := Delay(10, 200*time.Millisecond, 5*time.Second, None); d != 5*time.Second {
		t.Errorf("Delay(10) %v, want the maximum", d)
	}
}

func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	started := time.Now()
	if New(time.Hour, time.Hour, None).Sleep(ctx) {
		t.Fatal("Sleep reported a full wait after its context ended")
	}
	if took := time.Since(started); took > 5*time.Second {
		t.Errorf("Sleep took %v after its context ended", took)
	}
	if Wait(ctx, 0) {
		t.Error("Wait on an ended context reported true")
	}
	if !Wait(context.Background(), time.Millisecond) {
		t.Error("Wait of 1ms reported false")
	}
}

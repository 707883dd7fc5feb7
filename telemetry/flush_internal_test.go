package telemetry

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func newTracker() *Producer {
	return &Producer{
		slots:   make(chan struct{}, 10),
		pending: make(map[uint64]int),
		changed: make(chan struct{}),
	}
}

// TestFlushIgnoresLaterRecords: Flush waits for the records handed over
// before it, not for those sent while it waits.
func TestFlushIgnoresLaterRecords(t *testing.T) {
	p := newTracker()
	p.slots <- struct{}{}
	before := p.begin()
	flushed := make(chan error, 1)
	go func() { flushed <- p.Flush(context.Background()) }()
	// Wait for Flush to start a new generation.
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.mu.Lock()
		started := p.epoch == before+1
		p.mu.Unlock()
		if started {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Flush did not start a generation")
		}
		time.Sleep(time.Millisecond)
	}
	p.slots <- struct{}{}
	after := p.begin()
	select {
	case err := <-flushed:
		t.Fatalf("Flush returned %v with a record of its generation in flight", err)
	default:
	}
	p.finish(before, 1, nil)
	if err := <-flushed; err != nil {
		t.Errorf("Flush = %v, want nil", err)
	}
	p.mu.Lock()
	if n := p.pendingThrough(after); n != 1 {
		t.Errorf("%d records in flight, want 1 (the later one)", n)
	}
	p.mu.Unlock()
}

// TestFlushMergesFailures: failures of one topic and cause are merged and
// counted; beyond maxFailures distinct causes, only a count is kept.
func TestFlushMergesFailures(t *testing.T) {
	p := newTracker()
	cause := errors.New("boom")
	for range 3 {
		p.mu.Lock()
		p.fail(&DeliveryError{Topic: "a", Records: 2, Err: cause})
		p.mu.Unlock()
	}
	p.mu.Lock()
	p.fail(&DeliveryError{Topic: "b", Records: 1, Err: cause})
	p.mu.Unlock()
	err := p.Flush(context.Background())
	const want = "cannot deliver 6 records to topic \"a\": boom\ncannot deliver 1 record to topic \"b\": boom"
	if err == nil || err.Error() != want {
		t.Fatalf("Flush = %q, want %q", err, want)
	}

	for i := range maxFailures + 2 {
		p.mu.Lock()
		p.fail(&DeliveryError{Topic: "a", Records: 3, Err: fmt.Errorf("cause %d", i)})
		p.mu.Unlock()
	}
	err = p.Flush(context.Background())
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("Flush = %v, want a joined error", err)
	}
	errs := joined.Unwrap()
	if len(errs) != maxFailures+1 {
		t.Fatalf("Flush joined %d errors, want %d", len(errs), maxFailures+1)
	}
	const wantLast = "cannot deliver 6 more records: causes beyond the first 100 not kept, see the error handler"
	if got := errs[maxFailures].Error(); got != wantLast {
		t.Errorf("last error %q, want %q", got, wantLast)
	}
	if err := p.Flush(context.Background()); err != nil {
		t.Errorf("third Flush = %v, want nil", err)
	}
}

// Package backoff is pipetel's one retry wait: exponential between a minimum
// and a maximum, with a choice of jitter, and sleeps that end with their
// context. Every retry loop (dead letters, topic set-up, publisher set-up,
// outbox delivery, a publisher's in-call retries) waits with it; the loops
// keep their own attempt counts and deadlines.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Jitter is how a wait is randomised around the exponential delay d.
type Jitter int

const (
	// None waits d.
	None Jitter = iota
	// Full waits a uniform random time in (0, d] ("full jitter").
	Full
	// Half waits d shortened by a random part of up to half: [d/2, d].
	Half
)

// Backoff hands out the waits between the attempts of one retry loop: Min
// before the second attempt, doubling up to Max. The zero value waits
// nothing; build it with New. A Backoff is not safe for concurrent use.
type Backoff struct {
	min, max time.Duration
	jitter   Jitter
	next     time.Duration
}

// New returns a Backoff from lo to hi (hi below lo counts as lo).
func New(lo, hi time.Duration, jitter Jitter) *Backoff {
	return &Backoff{min: lo, max: max(lo, hi), jitter: jitter, next: lo}
}

// Next returns the wait before the next attempt, with its jitter, and
// doubles the delay after it (up to the maximum).
func (b *Backoff) Next() time.Duration {
	d := b.next
	b.next = min(2*b.next, b.max)
	return jittered(d, b.jitter)
}

// Reset starts again from the minimum, after a success.
func (b *Backoff) Reset() { b.next = b.min }

// Sleep waits Next() and reports whether it did; false when ctx ended first.
func (b *Backoff) Sleep(ctx context.Context) bool { return Wait(ctx, b.Next()) }

// Delay is the wait before attempt n+1 after n failed ones (n >= 1) of a
// loop that does not keep a Backoff: lo doubled n-1 times, at most hi,
// with jitter.
func Delay(n int, lo, hi time.Duration, jitter Jitter) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	return jittered(min(d, hi), jitter)
}

// Wait sleeps d and reports whether it did; false when ctx ended first.
func Wait(ctx context.Context, d time.Duration) bool {
	if ctx.Err() != nil {
		return false
	}
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func jittered(d time.Duration, j Jitter) time.Duration {
	switch j {
	case Full:
		if d > 0 {
			return time.Duration(rand.Int64N(int64(d))) + 1
		}
	case Half:
		if d > 1 {
			return d - rand.N(d/2)
		}
	}
	return d
}

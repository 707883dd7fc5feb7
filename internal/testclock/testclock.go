// Package testclock is the one clock pipetel's tests build record times
// from, so that the suite never depends on the calendar.
//
// Now is the wall clock moved by PIPETEL_TEST_CLOCK_OFFSET (a Go duration,
// e.g. 168h: the suite as it would run a week from now). Tests inject Now
// wherever the code under test takes a clock (processor.Config.Now, the
// telemetry SDK's WithClock) and build their record times from it; code that
// runs in another process (pipetel run in the fault tests) keeps the real
// clock, and the tests that drive it use time.Now.
package testclock

import (
	"fmt"
	"os"
	"sync"
	"time"
)

// EnvOffset names the environment variable that moves Now.
const EnvOffset = "PIPETEL_TEST_CLOCK_OFFSET"

var offset = sync.OnceValues(func() (time.Duration, error) {
	v := os.Getenv(EnvOffset)
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("cannot parse %s %q: expected a Go duration such as 168h: %w", EnvOffset, v, err)
	}
	return d, nil
})

// Offset is how far Now runs ahead of the wall clock (negative: behind). It
// panics when PIPETEL_TEST_CLOCK_OFFSET is set but not a duration, so a
// mistyped offset fails the suite instead of silently testing today.
func Offset() time.Duration {
	d, err := offset()
	if err != nil {
		panic(err)
	}
	return d
}

// Now is the wall clock plus Offset, in UTC.
func Now() time.Time { return time.Now().Add(Offset()).UTC() }

package sinks

import (
	"os"
	"testing"
	"time"
)

func fp(v float64) *float64 { return &v }

func tp(t *testing.T, s string) *time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("bad test time %q: %v", s, err)
	}
	return &v
}

// skipOrFail skips a test that needs something this machine lacks, except in
// CI (CI=true), where a missing dependency must fail the build.
func skipOrFail(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: required)")
	}
	t.Skip(msg)
}

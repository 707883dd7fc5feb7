package sinks

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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

// lockElasticsearch holds a shared lock on the node at url until the test
// ends, the lock cmd/pipetel's outage test takes exclusively before it stops
// the node: the node never stops under this package's tests.
func lockElasticsearch(t *testing.T, url string) {
	t.Helper()
	sum := sha256.Sum256([]byte(strings.TrimRight(url, "/")))
	path := filepath.Join(os.TempDir(), fmt.Sprintf("pipetel-test-elasticsearch-%x.lock", sum[:6]))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatalf("cannot open lock %q: %v", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
		f.Close()
		t.Fatalf("cannot lock %q: %v", path, err)
	}
	t.Cleanup(func() { f.Close() })
}

package sinks

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
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
// lintExposition runs promtool check metrics over what reg gathers.
func lintExposition(t *testing.T, reg prometheus.Gatherer) {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		skipOrFail(t, "promtool not found: apt-get install prometheus to lint the exposition")
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&text, mf); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = &text
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Errorf("promtool check metrics: %v\n%s\nexposition:\n%s", err, out, text.String())
	}
}

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

package delivery

import (
	"bytes"
	"os"
	"os/exec"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

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

// skipOrFail skips a test that needs something this machine lacks, except in
// CI (CI=true), where a missing dependency must fail the build.
func skipOrFail(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: required)")
	}
	t.Skip(msg)
}

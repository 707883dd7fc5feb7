package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/pipetel/pipetel/internal/app"
	"github.com/pipetel/pipetel/internal/testbroker"
	"github.com/pipetel/pipetel/internal/testclock"
)

// metricName finds the metric names in a PromQL expression: pipetel's own
// (pipetel_…) and the finished metrics' (events_total, event_…, network_…).
var metricName = regexp.MustCompile(`\b(pipetel_[a-z0-9_]+|events_total|event_(?:duration|retries)[a-z0-9_]*|network_[a-z0-9_]+)\b`)

// TestDashboardAndRulesUseExportedMetrics: every metric the Grafana
// dashboard and the Prometheus rules query is in a live exposition of an
// instance with a publisher of each kind, so that a renamed metric cannot
// leave a panel or an alert silently empty.
func TestDashboardAndRulesUseExportedMetrics(t *testing.T) {
	var exprs []string
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	data, err := os.ReadFile("../deploy/grafana/pipetel.json")
	must(t, err)
	must(t, json.Unmarshal(data, &dash))
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Expr string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	data, err = os.ReadFile("../deploy/prometheus/alerts.yml")
	must(t, err)
	must(t, yaml.Unmarshal(data, &rules))
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	if len(exprs) < 20 {
		t.Fatalf("only %d expressions read from the dashboard and the rules", len(exprs))
	}

	b := testbroker.Start(t)
	// Two instances of one group: one with the defaults (the state's
	// series), one with a publisher with an outbox (Prometheus in process
	// mode) and a pusher (Grafana Cloud, to an address nobody answers: it
	// only has to exist). Their expositions together are what the
	// dashboard and the rules can see.
	tt := newTestTopics(t, b, 2)
	def := startApp(t, testConfig(b, tt, t.TempDir()))
	tt2 := newTestTopics(t, b, 2)
	cfg := testConfig(b, tt2, t.TempDir())
	cfg.Sinks.Prometheus.Mode = "process"
	cfg.Sinks.GrafanaCloud = app.GrafanaCloudSink{Enabled: true}
	cfg.Sinks.GrafanaCloud.Endpoint = "http://127.0.0.1:1/api/v1/write"
	cfg.Sinks.GrafanaCloud.PushInterval = time.Hour
	proc := startApp(t, cfg)
	const n = 100
	for _, x := range []struct {
		a  *runningApp
		tt testTopics
	}{{def, tt}, {proc, tt2}} {
		clock := &fakeClock{}
		p := newProducer(t, b, x.tt, clock)
		s := scenario{prefix: "dash", base: testclock.Now().Add(-time.Hour).Truncate(time.Millisecond)}
		s.emit(t, p, clock, 0, n)
		waitFor(t, 60*time.Second, "the tasks finished", func() (bool, string) {
			done := sumMetric(x.a.scrape(t), "events_total", nil)
			return done == n, fmt.Sprintf("%v of %d", done, n)
		})
	}
	var fams []string
	for _, x := range []*runningApp{def, proc} {
		for name := range x.scrape(t) {
			if !slices.Contains(fams, name) {
				fams = append(fams, name)
			}
		}
	}
	var missing []string
	for _, e := range exprs {
		for _, name := range metricName.FindAllString(e, -1) {
			base := name
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if trimmed, ok := strings.CutSuffix(name, suffix); ok && slices.Contains(fams, trimmed) {
					base = trimmed
				}
			}
			if !slices.Contains(fams, base) && !slices.Contains(missing, name) {
				missing = append(missing, name)
			}
		}
	}
	if len(missing) > 0 {
		slices.Sort(fams)
		t.Errorf("queried but not exported: %v\nexported: %v", missing, fams)
	}
}

package app

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/sinks"
)

// testPublisher is a user's publisher that accepts everything and records
// when it is closed.
type testPublisher struct {
	name   string
	closed *[]string
}

var (
	_ sinks.Publisher = (*testPublisher)(nil)
	_ io.Closer       = (*testPublisher)(nil)
)

func (p *testPublisher) Name() string                                                  { return p.name }
func (p *testPublisher) PublishEvents(context.Context, []schemas.EventMetric) error    { return nil }
func (p *testPublisher) PublishNetwork(context.Context, []schemas.NetworkMetric) error { return nil }
func (p *testPublisher) Close() error {
	if p.closed != nil {
		*p.closed = append(*p.closed, p.name)
	}
	return nil
}

// TestPublisherNames: a user's publisher is refused, and every publisher
// given is closed, when its name is not a valid outbox key, is a built-in's
// (enabled or not) or another's; the error names the publisher by its place
// and type, the name, and what is allowed.
func TestPublisherNames(t *testing.T) {
	var cfg Config
	cfg.Processor.Brokers = []string{"127.0.0.1:1"}
	cfg.State.Dir = t.TempDir()
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	pub := func(name string) sinks.Publisher { return &testPublisher{name: name} }
	for _, tc := range []struct {
		pubs []sinks.Publisher
		want string
	}{
		{[]sinks.Publisher{pub("")}, `publishers[0] (*app.testPublisher).Name(): got "", expected 1 to 64 of a-z, 0-9, '_', '-', starting with a letter: it keys the publisher's outbox`},
		{[]sinks.Publisher{pub("ok"), pub("web\x00hook")}, `publishers[1] (*app.testPublisher).Name(): got "web\x00hook", expected 1 to 64 of a-z, 0-9, '_', '-', starting with a letter: it keys the publisher's outbox`},
		{[]sinks.Publisher{pub("Webhook")}, `publishers[0] (*app.testPublisher).Name(): got "Webhook", expected 1 to 64 of a-z, 0-9, '_', '-', starting with a letter: it keys the publisher's outbox`},
		{[]sinks.Publisher{pub("jsonl")}, `publishers[0] (*app.testPublisher).Name(): got "jsonl", expected a name no built-in publisher has (prometheus, elasticsearch, jsonl, grafanacloud): it keys the publisher's outbox`},
		{[]sinks.Publisher{pub("elasticsearch")}, `publishers[0] (*app.testPublisher).Name(): got "elasticsearch", expected a name no built-in publisher has (prometheus, elasticsearch, jsonl, grafanacloud): it keys the publisher's outbox`},
		{[]sinks.Publisher{pub("hook"), pub("audit"), pub("hook")}, `publishers[2] (*app.testPublisher).Name(): got "hook", another publisher's name, expected each name once: it keys the publisher's outbox`},
		{[]sinks.Publisher{nil}, `publishers[0]: got nil, expected a sinks.Publisher`},
	} {
		var closed []string
		for _, p := range tc.pubs {
			if p != nil {
				p.(*testPublisher).closed = &closed
			}
		}
		_, err := New(cfg, slog.New(slog.DiscardHandler), tc.pubs...)
		if err == nil || err.Error() != tc.want {
			t.Errorf("error %v, want %q", err, tc.want)
		}
		if len(closed) != len(tc.pubs) && tc.pubs[0] != nil {
			t.Errorf("closed %v, want every publisher given", closed)
		}
	}
	if err := checkPublishers([]sinks.Publisher{pub("a"), pub("web-hook_2")}); err != nil {
		t.Errorf("valid names: %v", err)
	}
}

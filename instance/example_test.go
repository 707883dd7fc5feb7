package instance_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/pipetel/pipetel/instance"
	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/sinks"
	"github.com/pipetel/pipetel/telemetry"
)

// webhook posts each batch of finished metrics as a JSON array to
// url/events or url/network.
type webhook struct {
	url    string
	client *http.Client
}

var _ sinks.Publisher = (*webhook)(nil)

func (w *webhook) Name() string { return "webhook" }

func (w *webhook) PublishEvents(ctx context.Context, ms []schemas.EventMetric) error {
	return w.post(ctx, "/events", ms)
}

func (w *webhook) PublishNetwork(ctx context.Context, ms []schemas.NetworkMetric) error {
	return w.post(ctx, "/network", ms)
}

func (w *webhook) post(ctx context.Context, path string, batch any) error {
	body, err := json.Marshal(batch)
	if err != nil {
		return fmt.Errorf("cannot encode webhook batch: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("cannot build webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.client.Do(req)
	if err != nil {
		return &sinks.HTTPError{Publisher: w.Name(), Err: err} // retried with backoff
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		// 408, 429 and 5xx are retried with backoff; another 4xx wraps
		// sinks.ErrPermanent: the batch goes to the dead-letter topic.
		return &sinks.HTTPError{Publisher: w.Name(), StatusCode: resp.StatusCode, Body: string(msg)}
	}
	return nil
}

// A publisher of your own, run by an instance in your binary: here a
// webhook, fed from its own outbox like the built-in publishers. The
// example starts an embedded broker where yours would be Kafka, and
// emits three tasks with the telemetry SDK.
func ExampleWithPublisher() {
	received := make(chan string, 100)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var batch []schemas.EventMetric
		if err := json.NewDecoder(r.Body).Decode(&batch); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, m := range batch {
			received <- fmt.Sprintf("%s %s %s %q", m.TaskID, m.EventName, m.Status, m.Error)
		}
	}))
	defer hook.Close()

	broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(),
		kfake.SeedTopics(1, schemas.DefaultEventsTopic, schemas.DefaultNetworkTopic))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer broker.Close()
	dir, err := os.MkdirTemp("", "pipetel-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	var cfg instance.Config // or instance.LoadConfig("pipetel.yaml")
	cfg.Processor.Brokers = broker.ListenAddrs()
	cfg.State.Dir = dir
	cfg.HTTP.Listen = "127.0.0.1:0"
	inst, err := instance.New(cfg,
		instance.WithPublisher(&webhook{url: hook.URL, client: hook.Client()}),
		instance.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	stopped := make(chan error, 1)
	go func() { stopped <- inst.Run(ctx) }()
	<-inst.Ready()

	producer, err := telemetry.NewProducer(cfg.Processor.Brokers)
	if err != nil {
		fmt.Println(err)
		return
	}
	log := producer.Logger()
	for _, task := range []struct{ id, event, err string }{
		{"task-1", "Extract", ""}, {"task-2", "Transform", "bad row 7"}, {"task-3", "Load", ""},
	} {
		var failed error
		if task.err != "" {
			failed = errors.New(task.err)
		}
		if err := errors.Join(log.StartEvent(ctx, task.event, task.id), log.EndEvent(ctx, task.id, failed)); err != nil {
			fmt.Println(err)
			return
		}
	}
	if err := producer.Close(ctx); err != nil {
		fmt.Println(err)
		return
	}

	var got []string
	timeout := time.After(time.Minute)
	for len(got) < 3 {
		select {
		case m := <-received:
			got = append(got, m)
		case <-timeout:
			fmt.Printf("after a minute the webhook has %d of 3 metrics\n", len(got))
			return
		}
	}
	stop()
	if err := <-stopped; err != nil {
		fmt.Println(err)
	}
	slices.Sort(got) // delivered in batches, in no order across partitions
	for _, m := range got {
		fmt.Println(m)
	}
	// Output:
	// task-1 Extract completed ""
	// task-2 Transform failed "bad row 7"
	// task-3 Load completed ""
}

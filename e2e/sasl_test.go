package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"github.com/pipetel/pipetel/internal/app"
	"log/slog"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/pipetel/pipetel/internal/kafkaconn"
	"github.com/pipetel/pipetel/internal/testbroker"
	"github.com/pipetel/pipetel/internal/testclock"
	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/telemetry"
)

// TestSASLSSLEndToEnd: pipelines produce with the SDK over TLS and
// SCRAM-SHA-512, pipetel consumes over the same SASL_SSL listener with the
// kafka block of its configuration, and the API answers for every task. A
// wrong password and an untrusted CA stop pipetel run at once, saying which.
func TestSASLSSLEndToEnd(t *testing.T) {
	addr := os.Getenv("PIPETEL_TEST_KAFKA_SASL_SSL")
	if addr == "" || os.Getenv(testbroker.EnvKafka) == "" {
		t.Skip("needs the real Kafka broker with its SASL_SSL listener (PIPETEL_TEST_KAFKA_SASL_SSL; make test starts it)")
	}
	ca, otherCA := os.Getenv("PIPETEL_TEST_KAFKA_CA"), os.Getenv("PIPETEL_TEST_KAFKA_OTHER_CA")
	user, password := os.Getenv("PIPETEL_TEST_KAFKA_USER"), os.Getenv("PIPETEL_TEST_KAFKA_PASSWORD")
	b := testbroker.Start(t)
	tt := newTestTopics(t, b, 2) // created over the plaintext listener of the same broker
	secured := func(pw, caFile string) app.Config {
		cfg := testConfig(b, tt, t.TempDir())
		cfg.Processor.Brokers = []string{addr}
		cfg.Kafka = kafkaconn.Config{TLS: kafkaconn.TLSConfig{CAFile: caFile},
			SASL: kafkaconn.SASLConfig{Mechanism: kafkaconn.MechanismSCRAMSHA512, Username: user, Password: pw}}
		return cfg
	}
	a := startApp(t, secured(password, ca))

	pem, err := os.ReadFile(ca)
	must(t, err)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no certificate in the CA file")
	}
	mech, err := scram.Mechanism(scram.SHA512, user, password)
	must(t, err)
	clock := &fakeClock{}
	p, err := telemetry.NewProducer([]string{addr}, telemetry.WithTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}),
		telemetry.WithSASL(mech), telemetry.WithEventsTopic(tt.events), telemetry.WithNetworkTopic(tt.network),
		telemetry.WithClock(clock.now), telemetry.WithBatchTimeout(5*time.Millisecond))
	must(t, err)
	t.Cleanup(func() { p.Close(context.Background()) })
	const n = 200
	base := testclock.Now().Add(-time.Hour).Truncate(time.Millisecond)
	ctx := context.Background()
	for i := range n {
		id := fmt.Sprintf("sasl-%03d", i)
		clock.set(base.Add(time.Duration(i) * time.Millisecond))
		must(t, p.Logger().StartEvent(ctx, "secured", id))
		clock.set(base.Add(time.Duration(i)*time.Millisecond + 250*time.Millisecond))
		must(t, p.Logger().EndEvent(ctx, id, nil))
	}
	must(t, p.Flush(ctx))
	waitFor(t, 60*time.Second, "every task finished through SASL_SSL", func() (bool, string) {
		done := sumMetric(a.scrape(t), "events_total", map[string]string{"status": "completed"})
		return done == n, fmt.Sprintf("completed %v of %d", done, n)
	})
	var m schemas.EventMetric
	if code := a.getJSON(t, "/api/v1/events/sasl-123", &m); code != http.StatusOK || m.Status != schemas.StatusCompleted ||
		m.DurationSeconds == nil || *m.DurationSeconds != 0.25 {
		t.Errorf("GET sasl-123: %d %+v", code, m)
	}

	f := func(name string, cfg app.Config, want error) {
		t.Helper()
		must(t, cfg.Validate())
		inst, err := app.New(cfg, slog.New(slog.DiscardHandler))
		must(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		started := time.Now()
		err = inst.Run(ctx)
		if !errors.Is(err, want) {
			t.Errorf("%s: run returned %v, want %v", name, err, want)
		}
		if took := time.Since(started); took > 20*time.Second {
			t.Errorf("%s: took %v to fail", name, took)
		}
	}
	f("wrong password", secured(password+"x", ca), kafkaconn.ErrAuthentication)
	f("untrusted CA", secured(password, otherCA), kafkaconn.ErrUntrusted)
}

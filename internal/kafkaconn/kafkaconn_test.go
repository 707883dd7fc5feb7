package kafkaconn

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

func TestValidate(t *testing.T) {
	ca := t.TempDir() + "/ca.pem"
	if err := os.WriteFile(ca, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := func(c Config, want string) {
		t.Helper()
		err := c.Validate("kafka")
		if want == "" && err != nil || want != "" && (err == nil || err.Error() != want) {
			t.Errorf("Validate(%v) = %v, want %q", c, err, want)
		}
	}
	f(Config{}, "")
	f(Config{SASL: SASLConfig{Mechanism: "SCRAM-SHA-512", Username: "u", Password: "p"}}, "")
	f(Config{SASL: SASLConfig{Mechanism: "GSSAPI", Username: "u", Password: "p"}},
		`kafka.sasl.mechanism: got "GSSAPI", expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512`)
	f(Config{SASL: SASLConfig{Mechanism: "PLAIN", Password: "p"}},
		`kafka.sasl.username: got "", expected the user to authenticate as with PLAIN`)
	f(Config{SASL: SASLConfig{Mechanism: "SCRAM-SHA-256", Username: "u"}},
		`kafka.sasl.password: got "", expected a password (in the file or in PIPETEL_KAFKA_PASSWORD)`)
	f(Config{SASL: SASLConfig{Username: "u"}},
		`kafka.sasl.mechanism: got "" with a username or password set, expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512`)
	f(Config{TLS: TLSConfig{CertFile: "c.pem"}}, `kafka.tls.cert_file and key_file: got "c.pem" and "", expected both or neither`)
	f(Config{TLS: TLSConfig{CAFile: ca}}, `kafka.tls.ca_file: got "`+ca+`", expected PEM certificates, found none`)
	if s := (Config{SASL: SASLConfig{Mechanism: "PLAIN", Username: "u", Password: "secret"}}).String(); strings.Contains(s, "secret") {
		t.Errorf("String() shows the password: %s", s)
	}
}

// secured is the SASL_SSL listener of deploy/local/services' Kafka.
func secured(t *testing.T) (addr, ca, otherCA, user, password string) {
	t.Helper()
	addr = os.Getenv("PIPETEL_TEST_KAFKA_SASL_SSL")
	if addr == "" {
		t.Skip("PIPETEL_TEST_KAFKA_SASL_SSL is not set: no SASL_SSL listener (make test starts one)")
	}
	return addr, os.Getenv("PIPETEL_TEST_KAFKA_CA"), os.Getenv("PIPETEL_TEST_KAFKA_OTHER_CA"),
		os.Getenv("PIPETEL_TEST_KAFKA_USER"), os.Getenv("PIPETEL_TEST_KAFKA_PASSWORD")
}

// TestSASLSSL: every mechanism connects through TLS, produces and reads a
// record; a wrong password and an untrusted CA fail fast, saying which.
func TestSASLSSL(t *testing.T) {
	addr, ca, otherCA, user, password := secured(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, mech := range []string{MechanismPlain, MechanismSCRAMSHA256, MechanismSCRAMSHA512} {
		conn, err := New(Config{TLS: TLSConfig{CAFile: ca}, SASL: SASLConfig{Mechanism: mech, Username: user, Password: password}}, "kafka")
		if err != nil {
			t.Fatal(err)
		}
		if err := conn.Check(ctx, []string{addr}); err != nil {
			t.Fatalf("%s: %v", mech, err)
		}
		topic := fmt.Sprintf("kafkaconn-%s-%d", strings.ToLower(mech), time.Now().UnixNano())
		w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: topic, Transport: conn.Transport(), RequiredAcks: kafka.RequireAll,
			AllowAutoTopicCreation: true, BatchTimeout: time.Millisecond}
		var werr error
		for range 20 { // the topic is created by the first write
			if werr = w.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: []byte(mech)}); werr == nil {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		w.Close()
		if werr != nil {
			t.Fatalf("%s: produce: %v", mech, werr)
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: topic, Partition: 0, Dialer: conn.Dialer(), MaxWait: 500 * time.Millisecond})
		m, err := r.FetchMessage(ctx)
		r.Close()
		if err != nil || string(m.Value) != mech {
			t.Fatalf("%s: read back %q, %v", mech, m.Value, err)
		}
	}
	wrong, err := New(Config{TLS: TLSConfig{CAFile: ca}, SASL: SASLConfig{Mechanism: MechanismSCRAMSHA512, Username: user, Password: password + "x"}}, "kafka")
	if err != nil {
		t.Fatal(err)
	}
	if err := wrong.Check(ctx, []string{addr}); !errors.Is(err, ErrAuthentication) {
		t.Errorf("wrong password: %v, want ErrAuthentication", err)
	}
	untrusted, err := New(Config{TLS: TLSConfig{CAFile: otherCA}, SASL: SASLConfig{Mechanism: MechanismSCRAMSHA512, Username: user, Password: password}}, "kafka")
	if err != nil {
		t.Fatal(err)
	}
	if err := untrusted.Check(ctx, []string{addr}); !errors.Is(err, ErrUntrusted) {
		t.Errorf("untrusted CA: %v, want ErrUntrusted", err)
	}
	if err := Plain.Check(ctx, []string{"127.0.0.1:1"}); !errors.Is(err, ErrUnreachable) {
		t.Errorf("nothing listening: %v, want ErrUnreachable", err)
	}
}

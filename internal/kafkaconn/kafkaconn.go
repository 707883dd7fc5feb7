// Package kafkaconn builds the one way pipetel's Kafka clients connect: TLS
// (a CA, an optional client certificate, a server name) and SASL (PLAIN,
// SCRAM-SHA-256, SCRAM-SHA-512), from one configuration, as the kafka-go
// Dialer (consumer groups, readers) and Transport (clients, writers) that
// every component uses. Check connects once and says what is wrong, so a
// bad password or an untrusted certificate fails at start-up, not in a
// retry loop.
package kafkaconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// SASL mechanisms.
const (
	MechanismPlain       = "PLAIN"
	MechanismSCRAMSHA256 = "SCRAM-SHA-256"
	MechanismSCRAMSHA512 = "SCRAM-SHA-512"
)

// PasswordEnv is the environment variable that sets SASLConfig.Password
// when the file leaves it empty, so that the secret need not be in the file.
const PasswordEnv = "PIPETEL_KAFKA_PASSWORD"

// TLSConfig turns on TLS to the brokers.
type TLSConfig struct {
	// Enabled turns TLS on; the other fields imply it.
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM bundle of the CAs to trust; empty: the system's.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and its key, for
	// brokers that authenticate clients by certificate (mutual TLS).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name the broker's certificate is checked
	// against (default: the host of the address dialed).
	ServerName string `yaml:"server_name"`
}

// SASLConfig authenticates to the brokers.
type SASLConfig struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty: no SASL.
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	// Password; when empty, PIPETEL_KAFKA_PASSWORD. Never logged.
	Password string `yaml:"password"`
}

// Config is how to connect to the brokers. The zero value is plaintext
// without authentication.
type Config struct {
	TLS  TLSConfig  `yaml:"tls"`
	SASL SASLConfig `yaml:"sasl"`
}

// String leaves the password out.
func (c Config) String() string {
	pw := ""
	if c.SASL.Password != "" {
		pw = " password=<set>"
	}
	return fmt.Sprintf("tls=%t ca_file=%q cert_file=%q server_name=%q sasl=%q username=%q%s",
		c.tlsOn(), c.TLS.CAFile, c.TLS.CertFile, c.TLS.ServerName, c.SASL.Mechanism, c.SASL.Username, pw)
}

func (c Config) tlsOn() bool {
	return c.TLS.Enabled || c.TLS.CAFile != "" || c.TLS.CertFile != "" || c.TLS.ServerName != ""
}

// Validate checks the configuration, files included; path is its place in
// the YAML tree (e.g. "kafka"), for the error's field name.
func (c Config) Validate(path string) error {
	_, err := New(c, path)
	return err
}

// checkFields checks what needs no file.
func (c Config) checkFields(path string) error {
	switch c.SASL.Mechanism {
	case "":
		if c.SASL.Username != "" || c.SASL.Password != "" {
			return fmt.Errorf("%s.sasl.mechanism: got \"\" with a username or password set, expected %s, %s or %s",
				path, MechanismPlain, MechanismSCRAMSHA256, MechanismSCRAMSHA512)
		}
	case MechanismPlain, MechanismSCRAMSHA256, MechanismSCRAMSHA512:
		if c.SASL.Username == "" {
			return fmt.Errorf("%s.sasl.username: got \"\", expected the user to authenticate as with %s", path, c.SASL.Mechanism)
		}
		if c.SASL.Password == "" {
			return fmt.Errorf("%s.sasl.password: got \"\", expected a password (in the file or in %s)", path, PasswordEnv)
		}
	default:
		return fmt.Errorf("%s.sasl.mechanism: got %q, expected %s, %s or %s", path, c.SASL.Mechanism, MechanismPlain, MechanismSCRAMSHA256, MechanismSCRAMSHA512)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return fmt.Errorf("%s.tls.cert_file and key_file: got %q and %q, expected both or neither", path, c.TLS.CertFile, c.TLS.KeyFile)
	}
	return nil
}

func (c Config) tlsConfig(path string) (*tls.Config, error) {
	if !c.tlsOn() {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.TLS.ServerName}
	if c.TLS.CAFile != "" {
		pem, err := os.ReadFile(c.TLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%s.tls.ca_file: cannot read %q: %w", path, c.TLS.CAFile, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s.tls.ca_file: got %q, expected PEM certificates, found none", path, c.TLS.CAFile)
		}
		cfg.RootCAs = pool
	}
	if c.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s.tls.cert_file: cannot load %q with key %q: %w", path, c.TLS.CertFile, c.TLS.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func (c Config) mechanism() (sasl.Mechanism, error) {
	switch c.SASL.Mechanism {
	case "":
		return nil, nil
	case MechanismPlain:
		return plain.Mechanism{Username: c.SASL.Username, Password: c.SASL.Password}, nil
	case MechanismSCRAMSHA256:
		return scram.Mechanism(scram.SHA256, c.SASL.Username, c.SASL.Password)
	case MechanismSCRAMSHA512:
		return scram.Mechanism(scram.SHA512, c.SASL.Username, c.SASL.Password)
	}
	return nil, fmt.Errorf("unknown SASL mechanism %q", c.SASL.Mechanism)
}

// Conn is a validated configuration, ready to make clients with.
type Conn struct {
	tls  *tls.Config
	sasl sasl.Mechanism
}

// New validates c and prepares its TLS configuration (reading its files
// once) and SASL mechanism.
func New(c Config, path string) (*Conn, error) {
	if err := c.checkFields(path); err != nil {
		return nil, err
	}
	t, err := c.tlsConfig(path)
	if err != nil {
		return nil, err
	}
	m, err := c.mechanism()
	if err != nil {
		return nil, fmt.Errorf("%s.sasl: %w", path, err)
	}
	return &Conn{tls: t, sasl: m}, nil
}

// Plain is the connection without TLS or SASL.
var Plain = &Conn{}

// Dialer returns a new kafka-go Dialer (consumer groups, readers).
func (c *Conn) Dialer() *kafka.Dialer {
	return &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true, TLS: c.tlsClone(), SASLMechanism: c.sasl}
}

// Transport returns a new kafka-go Transport (clients, writers): one per
// component, for the metadata cache is per transport.
func (c *Conn) Transport() *kafka.Transport {
	return &kafka.Transport{TLS: c.tlsClone(), SASL: c.sasl}
}

func (c *Conn) tlsClone() *tls.Config {
	if c == nil || c.tls == nil {
		return nil
	}
	return c.tls.Clone()
}

// Errors Check returns (wrapped), so that the operator reads which part of
// the connection is wrong.
var (
	ErrAuthentication = errors.New("the brokers refused the SASL credentials")
	ErrUntrusted      = errors.New("the brokers' certificate is not trusted")
	ErrUnreachable    = errors.New("no broker could be reached")
)

// Check connects to the first broker that answers and reads the cluster's
// metadata: it fails fast, naming the cause (ErrAuthentication,
// ErrUntrusted, ErrUnreachable), where the clients would retry.
func (c *Conn) Check(ctx context.Context, brokers []string) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var last error
	for _, b := range brokers {
		conn, err := c.Dialer().DialContext(ctx, "tcp", b)
		if err == nil {
			_, err = conn.Brokers()
			conn.Close()
		}
		if err == nil {
			return nil
		}
		last = fmt.Errorf("broker %s: %w", b, err)
		if kind := classify(err); kind != nil {
			return fmt.Errorf("cannot connect to Kafka: %w: %w", kind, last)
		}
	}
	return fmt.Errorf("cannot connect to Kafka: %w: %w", ErrUnreachable, last)
}

func classify(err error) error {
	var unknownAuthority x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	switch {
	case errors.As(err, &unknownAuthority), errors.As(err, &hostname), errors.As(err, &invalid), errors.As(err, &verify):
		return ErrUntrusted
	case errors.Is(err, kafka.SASLAuthenticationFailed), errors.Is(err, kafka.UnsupportedSASLMechanism),
		strings.Contains(err.Error(), "SASL Authentication Failed"):
		return ErrAuthentication
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return nil // try the next broker
	}
	return nil
}

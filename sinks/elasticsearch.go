package sinks

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/elastic/go-elasticsearch/v8"

	"github.com/pipetel/pipetel/schemas"
)

var _ Publisher = (*Elasticsearch)(nil)

// Elasticsearch configuration defaults.
const (
	DefaultIndexPrefix   = "event-pipeline-metrics"
	DefaultFlushBytes    = 5 << 20
	DefaultFlushInterval = 5 * time.Second
	DefaultESTimeout     = 30 * time.Second
)

// maxBulkResponse bounds how much of a bulk response is read: far above the
// ~200 bytes per item that filter_path leaves.
const maxBulkResponse = 64 << 20

// ElasticsearchConfig configures the Elasticsearch publisher.
type ElasticsearchConfig struct {
	// Hosts are node URLs, http or https, without credentials; requests go
	// round-robin. Required.
	Hosts []string `yaml:"hosts"`
	// IndexPrefix starts every index and the index template's name: lower case
	// letters, digits, '.', '_' and '-', starting with a letter or digit.
	// Default "event-pipeline-metrics".
	IndexPrefix string `yaml:"index_prefix"`
	// Username and Password are basic auth credentials; set both or neither.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// APIKey is a base64 API key (the "encoded" value Elasticsearch returns);
	// set it or Username/Password, not both.
	APIKey string `yaml:"api_key"`
	// CAFile is a PEM file of the certificate authorities to trust instead of
	// the system's.
	CAFile string `yaml:"ca_file"`
	// InsecureSkipVerify accepts any server certificate. For tests only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
	// Compress gzips request bodies.
	Compress bool `yaml:"compress"`
	// FlushBytes and FlushInterval are for the caller that forms batches:
	// the publisher sends each batch it is given as one bulk request, however
	// large. Defaults 5 MiB and 5s.
	FlushBytes    int           `yaml:"flush_bytes"`
	FlushInterval time.Duration `yaml:"flush_interval"`
	// Timeout bounds each HTTP request. Default 30s.
	Timeout time.Duration `yaml:"timeout"`
	// OpenSearch talks to OpenSearch 2.x: the v8 client refuses servers whose
	// responses lack "X-Elastic-Product: Elasticsearch", which OpenSearch never
	// sends, so this mode adds the header to every response it receives. The
	// APIs used here (_bulk, _index_template) behave alike on both.
	OpenSearch bool `yaml:"opensearch"`
}

var indexPrefixRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// ElasticsearchSection is where pipetel's configuration file holds the
// Elasticsearch publisher; its validation errors name fields by this path.
const ElasticsearchSection = "sinks.elasticsearch"

// Validate reports the first invalid field by its path in the
// configuration file (ElasticsearchSection), its value and what is
// expected. Empty fields with defaults are valid.
func (c ElasticsearchConfig) Validate() error {
	const at = ElasticsearchSection
	if len(c.Hosts) == 0 {
		return fmt.Errorf(`%s.hosts: got none, expected at least one URL such as "http://127.0.0.1:9200"`, at)
	}
	for i, h := range c.Hosts {
		u, err := url.Parse(h)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%s.hosts[%d]: got %q, expected an http:// or https:// URL with a host", at, i, h)
		}
		if u.User != nil {
			return fmt.Errorf("%s.hosts[%d]: got %q, expected no credentials in the URL: use username/password or api_key", at, i, u.Redacted())
		}
	}
	if c.IndexPrefix != "" && (!indexPrefixRE.MatchString(c.IndexPrefix) || len(c.IndexPrefix) > 200) {
		return fmt.Errorf("%s.index_prefix: got %q, expected up to 200 of a-z, 0-9, '.', '_', '-', starting with a letter or digit", at, c.IndexPrefix)
	}
	if (c.Username == "") != (c.Password == "") {
		return fmt.Errorf("%s.username/password: got one of them, expected both set or both empty", at)
	}
	if c.APIKey != "" && c.Username != "" {
		return fmt.Errorf("%s.api_key/username: got both, expected one way to authenticate", at)
	}
	if c.FlushBytes < 0 {
		return fmt.Errorf("%s.flush_bytes: got %d, expected 0 (default %d) or more", at, c.FlushBytes, DefaultFlushBytes)
	}
	if c.FlushInterval < 0 {
		return fmt.Errorf("%s.flush_interval: got %v, expected 0 (default %v) or more", at, c.FlushInterval, DefaultFlushInterval)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("%s.timeout: got %v, expected 0 (default %v) or more", at, c.Timeout, DefaultESTimeout)
	}
	return nil
}

func (c ElasticsearchConfig) withDefaults() ElasticsearchConfig {
	if c.IndexPrefix == "" {
		c.IndexPrefix = DefaultIndexPrefix
	}
	if c.FlushBytes == 0 {
		c.FlushBytes = DefaultFlushBytes
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultESTimeout
	}
	return c
}

// String shows the configuration with its secrets redacted, so that printing
// it (%v, %+v) never leaks them.
func (c ElasticsearchConfig) String() string {
	if c.Password != "" {
		c.Password = "REDACTED"
	}
	if c.APIKey != "" {
		c.APIKey = "REDACTED"
	}
	type plain ElasticsearchConfig // no String method: no recursion
	return fmt.Sprintf("%+v", plain(c))
}

// Elasticsearch indexes finished metrics into daily indices,
// <prefix>-events-YYYY.MM.DD and <prefix>-network-YYYY.MM.DD, dated by the
// metric's start time in UTC (its end time when it has no start), never by the
// wall clock. Document ids are the task_id for events and task_id/op_id for
// network operations, written with the bulk "index" action, so publishing a
// metric again overwrites the same document.
//
// Each document is the metric's JSON plus "@timestamp" (the end time, else the
// start time) and "metric_type" ("event" or "network").
//
// Each PublishEvents or PublishNetwork call sends the batch as one _bulk
// request and retries the items refused with 429 or 5xx (see WithRetry). Its
// errors: *RejectedError for items refused for good (4xx such as mapping
// errors, and metrics with neither start nor end time, which are not sent);
// *ItemError for items still refused with 429/5xx after the retries; for the
// whole request *HTTPError (401/403 wrap ErrAuth and ErrPermanent; 429 and
// 5xx are retryable) or ErrBadResponse.
type Elasticsearch struct {
	cfg    ElasticsearchConfig
	opts   options
	client *elasticsearch.Client
}

// NewElasticsearch validates cfg and creates the publisher. It does not
// contact the cluster; call Setup for that.
func NewElasticsearch(cfg ElasticsearchConfig, opts ...Option) (*Elasticsearch, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	o := newOptions(opts)

	rt := o.transport
	if rt == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		if cfg.CAFile != "" || cfg.InsecureSkipVerify {
			t.TLSClientConfig = &tls.Config{InsecureSkipVerify: cfg.InsecureSkipVerify}
		}
		if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("cannot read elasticsearch ca_file %q: %w", cfg.CAFile, err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("cannot read elasticsearch ca_file %q: no PEM certificate in it", cfg.CAFile)
			}
			t.TLSClientConfig.RootCAs = pool
		}
		rt = t
	}
	if cfg.OpenSearch {
		rt = productHeaderTransport{next: rt}
	}

	client, err := elasticsearch.NewClient(elasticsearch.Config{
		Addresses:           cfg.Hosts,
		Username:            cfg.Username,
		Password:            cfg.Password,
		APIKey:              cfg.APIKey,
		CompressRequestBody: cfg.Compress,
		// The publisher retries (items, with backoff) itself and leaves
		// whole-request failures to its caller.
		DisableRetry: true,
		Transport:    rt,
	})
	if err != nil {
		return nil, fmt.Errorf("cannot create elasticsearch client for %q: %w", cfg.Hosts, err)
	}
	return &Elasticsearch{cfg: cfg, opts: o, client: client}, nil
}

// productHeaderTransport makes OpenSearch's responses pass the v8 client's
// product check.
type productHeaderTransport struct{ next http.RoundTripper }

func (t productHeaderTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := t.next.RoundTrip(req)
	if err == nil && res.Header.Get("X-Elastic-Product") == "" {
		res.Header.Set("X-Elastic-Product", "Elasticsearch")
	}
	return res, err
}

// Name returns "elasticsearch".
func (e *Elasticsearch) Name() string { return "elasticsearch" }

// Config returns the configuration with defaults filled in; a caller forming
// batches reads FlushBytes and FlushInterval from it.
func (e *Elasticsearch) Config() ElasticsearchConfig { return e.cfg }

// Setup installs (or replaces) the composable index template
// _index_template/<prefix> that maps both index families. Call it once at
// start; indices created before it keep their dynamic mappings.
func (e *Elasticsearch) Setup(parent context.Context) error {
	ctx, cancel := context.WithTimeout(parent, e.cfg.Timeout)
	defer cancel()
	res, err := e.client.Indices.PutIndexTemplate(e.cfg.IndexPrefix, bytes.NewReader(e.indexTemplate()),
		e.client.Indices.PutIndexTemplate.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("cannot install elasticsearch index template %q: %w", e.cfg.IndexPrefix, e.requestError(parent, err))
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, maxErrorBody))
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return fmt.Errorf("cannot install elasticsearch index template %q: %w", e.cfg.IndexPrefix, newHTTPError(e.Name(), res.StatusCode, body))
	}
	return nil
}

// templateVersion is stored in the template so that operators can tell which
// pipetel mapping a cluster has.
const templateVersion = 1

func (e *Elasticsearch) indexTemplate() []byte {
	keyword := map[string]any{"type": "keyword"}
	date := map[string]any{"type": "date"}
	double := map[string]any{"type": "double"}
	long := map[string]any{"type": "long"}
	integer := map[string]any{"type": "integer"}
	tmpl := map[string]any{
		"index_patterns": []string{e.cfg.IndexPrefix + "-events-*", e.cfg.IndexPrefix + "-network-*"},
		// Above the built-in templates (priority 100) that a prefix such as
		// "metrics-x" or "logs-x" would otherwise also match.
		"priority": 200,
		"version":  templateVersion,
		"_meta":    map[string]any{"managed_by": "pipetel"},
		"template": map[string]any{
			"mappings": map[string]any{
				// The template is the schema: fields it does not name stay in
				// _source unindexed and can never cause a mapping conflict.
				"dynamic": false,
				"properties": map[string]any{
					"@timestamp":  date,
					"metric_type": keyword,
					"task_id":     keyword,
					"status":      keyword,
					// Full text for searching messages, keyword for exact
					// aggregations of short ones.
					"error": map[string]any{"type": "text", "fields": map[string]any{
						"keyword": map[string]any{"type": "keyword", "ignore_above": 1024},
					}},
					"start_time":       date,
					"end_time":         date,
					"event_name":       keyword,
					"pipeline_id":      keyword,
					"process_id":       long,
					"duration_seconds": double,
					"retry_count":      integer,
					"op_id":            keyword,
					"host":             keyword,
					"port":             integer,
					"operation":        keyword,
					"latency_seconds":  double,
					"bytes_sent":       long,
					"bytes_received":   long,
				},
			},
		},
	}
	b, err := json.Marshal(tmpl)
	if err != nil {
		panic(fmt.Sprintf("cannot encode index template: %v", err)) // static data
	}
	return b
}

// bulkDoc is one document of a bulk request.
type bulkDoc struct {
	id, index string
	source    []byte
}

type eventDoc struct {
	*schemas.EventMetric
	Timestamp  time.Time `json:"@timestamp"`
	MetricType string    `json:"metric_type"`
}

type networkDoc struct {
	*schemas.NetworkMetric
	Timestamp  time.Time `json:"@timestamp"`
	MetricType string    `json:"metric_type"`
}

// docTimes returns the index date (start time, else end time) and the
// @timestamp (end time, else start time) of a metric.
func docTimes(start, end *time.Time) (day, stamp time.Time, ok bool) {
	switch {
	case start != nil && end != nil:
		return *start, *end, true
	case start != nil:
		return *start, *start, true
	case end != nil:
		return *end, *end, true
	}
	return time.Time{}, time.Time{}, false
}

func (e *Elasticsearch) indexName(family string, day time.Time) string {
	return e.cfg.IndexPrefix + "-" + family + "-" + day.UTC().Format("2006.01.02")
}

// PublishEvents indexes the events with one bulk request (plus retries of
// items refused for now).
func (e *Elasticsearch) PublishEvents(ctx context.Context, metrics []schemas.EventMetric) error {
	docs := make([]bulkDoc, 0, len(metrics))
	var local []Rejected
	for i := range metrics {
		m := &metrics[i]
		day, stamp, ok := docTimes(m.StartTime, m.EndTime)
		switch {
		case m.TaskID == "":
			local = append(local, Rejected{Reason: "event has no task_id"})
			continue
		case !ok:
			local = append(local, Rejected{ID: m.TaskID, Reason: "event has neither start_time nor end_time"})
			continue
		}
		src, err := json.Marshal(eventDoc{EventMetric: m, Timestamp: stamp.UTC(), MetricType: "event"})
		if err != nil { // a time outside years 0-9999
			local = append(local, Rejected{ID: m.TaskID, Reason: err.Error()})
			continue
		}
		docs = append(docs, bulkDoc{id: m.TaskID, index: e.indexName("events", day), source: src})
	}
	return e.publish(ctx, "events", docs, local)
}

// PublishNetwork indexes the network operations with one bulk request (plus
// retries of items refused for now).
func (e *Elasticsearch) PublishNetwork(ctx context.Context, metrics []schemas.NetworkMetric) error {
	docs := make([]bulkDoc, 0, len(metrics))
	var local []Rejected
	for i := range metrics {
		m := &metrics[i]
		id := m.TaskID + "/" + m.OpID
		day, stamp, ok := docTimes(m.StartTime, m.EndTime)
		switch {
		case m.TaskID == "" || m.OpID == "":
			local = append(local, Rejected{ID: id, Reason: "network operation has no task_id or op_id"})
			continue
		case !ok:
			local = append(local, Rejected{ID: id, Reason: "network operation has neither start_time nor end_time"})
			continue
		}
		src, err := json.Marshal(networkDoc{NetworkMetric: m, Timestamp: stamp.UTC(), MetricType: "network"})
		if err != nil {
			local = append(local, Rejected{ID: id, Reason: err.Error()})
			continue
		}
		docs = append(docs, bulkDoc{id: id, index: e.indexName("network", day), source: src})
	}
	return e.publish(ctx, "network operations", docs, local)
}

// publish sends docs, retrying the items refused for now, and sorts the
// outcome into the error types of errors.go.
func (e *Elasticsearch) publish(ctx context.Context, what string, docs []bulkDoc, rejected []Rejected) error {
	result := func(retry []Rejected, whole error) error {
		var errs []error
		if len(rejected) > 0 {
			errs = append(errs, &RejectedError{Publisher: e.Name(), Items: rejected})
		}
		if len(retry) > 0 {
			errs = append(errs, &ItemError{Publisher: e.Name(), Items: retry})
		}
		if whole != nil {
			errs = append(errs, fmt.Errorf("cannot index %d %s in elasticsearch: %w", len(docs), what, whole))
		}
		return errors.Join(errs...)
	}

	pending := docs
	for try := 1; len(pending) > 0; try++ {
		results, err := e.bulk(ctx, pending)
		if err != nil {
			return result(nil, err)
		}
		var again []bulkDoc
		var retry []Rejected
		for i, r := range results {
			switch {
			case r.Status >= 200 && r.Status <= 299:
			case retryableStatus(r.Status):
				again = append(again, pending[i])
				retry = append(retry, Rejected{ID: pending[i].id, Status: r.Status, Reason: r.Reason})
			default:
				rejected = append(rejected, Rejected{ID: pending[i].id, Status: r.Status, Reason: r.Reason})
			}
		}
		if len(again) == 0 {
			break
		}
		if !e.opts.retry.more(try) || e.opts.retry.wait(ctx, try) != nil {
			return result(retry, nil)
		}
		pending = again
	}
	return result(nil, nil)
}

// bulk sends one _bulk request and returns one result per document.
func (e *Elasticsearch) bulk(parent context.Context, docs []bulkDoc) ([]bulkResult, error) {
	var body bytes.Buffer
	ids := make([]string, len(docs))
	for i, d := range docs {
		ids[i] = d.id
		action, _ := json.Marshal(map[string]bulkAction{"index": {Index: d.index, ID: d.id}})
		body.Write(action)
		body.WriteByte('\n')
		body.Write(d.source)
		body.WriteByte('\n')
	}

	ctx, cancel := context.WithTimeout(parent, e.cfg.Timeout)
	defer cancel()
	res, err := e.client.Bulk(&body, e.client.Bulk.WithContext(ctx),
		e.client.Bulk.WithFilterPath("errors", "items.*._id", "items.*.status", "items.*.error"))
	if err != nil {
		return nil, e.requestError(parent, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxBulkResponse+1))
	if err != nil {
		return nil, &HTTPError{Publisher: e.Name(), Err: err}
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return nil, newHTTPError(e.Name(), res.StatusCode, data)
	}
	if len(data) > maxBulkResponse {
		return nil, fmt.Errorf("cannot read bulk response: longer than %d bytes: %w", maxBulkResponse, ErrBadResponse)
	}
	return parseBulkResponse(data, ids)
}

type bulkAction struct {
	Index string `json:"_index"`
	ID    string `json:"_id"`
}

// requestError classifies an error from the client, which got no response;
// parent is the caller's context, not the one bounded by Timeout, whose expiry
// is a network error like any other.
func (e *Elasticsearch) requestError(parent context.Context, err error) error {
	if parent.Err() != nil {
		if errors.Is(err, parent.Err()) {
			return err
		}
		return fmt.Errorf("%w (%v)", parent.Err(), err)
	}
	if strings.Contains(err.Error(), "server is not Elasticsearch") {
		// The v8 client's product check; retryable, since the cause is the
		// configuration rather than the items.
		return fmt.Errorf("%w (set opensearch: true for an OpenSearch cluster)", err)
	}
	return &HTTPError{Publisher: e.Name(), Err: err}
}

// bulkResult is the outcome of one bulk item.
type bulkResult struct {
	Status int
	Reason string
}

// parseBulkResponse checks a 2xx bulk response against the ids sent (same
// count, same order, same ids where the response names them) and returns one
// result per id. Any other shape wraps ErrBadResponse.
func parseBulkResponse(data []byte, ids []string) ([]bulkResult, error) {
	var resp struct {
		Items []map[string]struct {
			ID     *string         `json:"_id"`
			Status int             `json:"status"`
			Error  json.RawMessage `json:"error"`
		} `json:"items"`
	}
	if err := json.Unmarshal(data, &resp); err != nil {
		return nil, fmt.Errorf("cannot decode bulk response: %v: %w", err, ErrBadResponse)
	}
	if resp.Items == nil {
		return nil, fmt.Errorf("cannot decode bulk response: no items for %d documents: %w", len(ids), ErrBadResponse)
	}
	if len(resp.Items) != len(ids) {
		return nil, fmt.Errorf("cannot decode bulk response: %d items for %d documents: %w", len(resp.Items), len(ids), ErrBadResponse)
	}
	results := make([]bulkResult, len(ids))
	for i, item := range resp.Items {
		if len(item) != 1 {
			return nil, fmt.Errorf("cannot decode bulk response: item %d has %d actions, want 1: %w", i, len(item), ErrBadResponse)
		}
		for _, r := range item {
			if r.Status < 100 || r.Status > 599 {
				return nil, fmt.Errorf("cannot decode bulk response: item %d has status %d: %w", i, r.Status, ErrBadResponse)
			}
			if r.ID != nil && *r.ID != ids[i] {
				return nil, fmt.Errorf("cannot decode bulk response: item %d has _id %q, want %q: %w", i, *r.ID, ids[i], ErrBadResponse)
			}
			results[i] = bulkResult{Status: r.Status, Reason: bulkReason(r.Error)}
		}
	}
	return results, nil
}

// bulkReason turns an item's error (an object, or a string from old
// versions) into one line: "type: reason (caused by type: reason)".
func bulkReason(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	type cause struct {
		Type   string `json:"type"`
		Reason string `json:"reason"`
	}
	var e struct {
		cause
		CausedBy *cause `json:"caused_by"`
	}
	line := func(c cause) string {
		if c.Type == "" || c.Reason == "" {
			return c.Type + c.Reason
		}
		return c.Type + ": " + c.Reason
	}
	var s string
	var reason string
	switch {
	case json.Unmarshal(raw, &s) == nil:
		reason = s
	case json.Unmarshal(raw, &e) == nil:
		reason = line(e.cause)
		if e.CausedBy != nil {
			reason += " (caused by " + line(*e.CausedBy) + ")"
		}
	default:
		reason = string(raw)
	}
	if len(reason) > maxErrorBody {
		reason = strings.ToValidUTF8(reason[:maxErrorBody], "")
	}
	return reason
}

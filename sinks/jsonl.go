package sinks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/pipetel/pipetel/schemas"
)

var (
	_ Publisher = (*JSONL)(nil)
	_ io.Closer = (*JSONL)(nil)
)

// JSON-lines configuration defaults.
const (
	DefaultJSONLMaxBytes = 100 << 20
	DefaultJSONLMaxFiles = 5
)

// JSONLSection is where pipetel's configuration file holds the JSON-lines
// publisher; its validation errors name fields by this path.
const JSONLSection = "sinks.jsonl"

// JSONLStdout is the Path that means standard output.
const JSONLStdout = "-"

// JSONLConfig configures the JSON-lines publisher.
type JSONLConfig struct {
	// Path is the file the lines are appended to, created if missing (its
	// directory is not), or "-" for standard output. Required.
	Path string `yaml:"path"`
	// MaxBytes rotates the file before a line would take it past this many
	// bytes; a single longer line gets a file of its own. Default 100 MiB.
	// Standard output is never rotated.
	MaxBytes int64 `yaml:"max_bytes"`
	// MaxFiles is how many rotated files, path.1 (the newest) to
	// path.<max_files>, are kept beside path. Default 5.
	MaxFiles int `yaml:"max_files"`
}

// Validate reports the first invalid field by its path in the
// configuration file (JSONLSection), its value and what is expected. Empty
// fields with defaults are valid.
func (c JSONLConfig) Validate() error {
	const at = JSONLSection
	if c.Path == "" {
		return fmt.Errorf(`%s.path: got "", expected a file to append to, or "-" for standard output`, at)
	}
	if c.MaxBytes < 0 {
		return fmt.Errorf("%s.max_bytes: got %d, expected 0 (default %d) or more", at, c.MaxBytes, DefaultJSONLMaxBytes)
	}
	if c.MaxFiles < 0 {
		return fmt.Errorf("%s.max_files: got %d, expected 0 (default %d) or more", at, c.MaxFiles, DefaultJSONLMaxFiles)
	}
	return nil
}

func (c JSONLConfig) withDefaults() JSONLConfig {
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultJSONLMaxBytes
	}
	if c.MaxFiles == 0 {
		c.MaxFiles = DefaultJSONLMaxFiles
	}
	return c
}

// JSONL writes each finished metric as one line of JSON: the metric's
// fields (the query API's) after "metric_type" ("event" or "network"), for
// debugging and for feeding other tools (jq, a log shipper).
//
// A publish call returns once its lines are written and, for a file, synced
// to disk, so an outbox item acknowledged after it is on disk. Delivery is
// at least once: after a crash between the sync and the acknowledgement the
// batch is written again, so a reader must tolerate a line seen twice (a
// metric's task_id, with op_id for an operation, identifies it). A failed
// write is cut off again, so a retry never follows half a line.
//
// A file is rotated by size: before a line would take it past MaxBytes,
// path.<max_files> is dropped, path.<n> renamed to path.<n+1>, path to
// path.1, and a new path created.
type JSONL struct {
	cfg JSONLConfig

	mu     sync.Mutex
	out    io.Writer // standard output, nil for a file
	f      *os.File  // the file; nil once closed, or after a failed rotation until reopened
	size   int64     // bytes in f
	closed bool
	buf    []byte
}

// NewJSONL validates cfg and opens (or creates) its file, so an unwritable
// path fails here, naming it. WithOutput replaces standard output.
func NewJSONL(cfg JSONLConfig, opts ...Option) (*JSONL, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	j := &JSONL{cfg: cfg}
	if cfg.Path == JSONLStdout {
		j.out = newOptions(opts).output
		if j.out == nil {
			j.out = os.Stdout
		}
		return j, nil
	}
	if err := j.open(); err != nil {
		return nil, err
	}
	return j, nil
}

// Name returns "jsonl".
func (j *JSONL) Name() string { return "jsonl" }

// Config returns the configuration with defaults filled in.
func (j *JSONL) Config() JSONLConfig { return j.cfg }

// PublishEvents writes one line per metric.
func (j *JSONL) PublishEvents(_ context.Context, metrics []schemas.EventMetric) error {
	lines := make([][]byte, len(metrics))
	for i := range metrics {
		line, err := json.Marshal(struct {
			MetricType string `json:"metric_type"`
			*schemas.EventMetric
		}{"event", &metrics[i]})
		if err != nil {
			return fmt.Errorf("cannot encode event metric %q: %w", metrics[i].TaskID, err)
		}
		lines[i] = line
	}
	return j.write(lines)
}

// PublishNetwork writes one line per metric.
func (j *JSONL) PublishNetwork(_ context.Context, metrics []schemas.NetworkMetric) error {
	lines := make([][]byte, len(metrics))
	for i := range metrics {
		line, err := json.Marshal(struct {
			MetricType string `json:"metric_type"`
			*schemas.NetworkMetric
		}{"network", &metrics[i]})
		if err != nil {
			return fmt.Errorf("cannot encode network metric %q: %w", metrics[i].TaskID+"/"+metrics[i].OpID, err)
		}
		lines[i] = line
	}
	return j.write(lines)
}

// Close syncs and closes the file; later publish calls fail.
func (j *JSONL) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	j.closed = true
	if j.f == nil {
		return nil
	}
	err := errors.Join(j.f.Sync(), j.f.Close())
	j.f = nil
	if err != nil {
		return fmt.Errorf("cannot close jsonl file %q: %w", j.cfg.Path, err)
	}
	return nil
}

// write appends lines, rotating before a line that would pass MaxBytes,
// and syncs the file before it returns. The caller's retry is the retry:
// every error is retryable (a full disk may be emptied).
func (j *JSONL) write(lines [][]byte) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return fmt.Errorf("cannot write jsonl file %q: the publisher is closed", j.cfg.Path)
	}
	if j.out != nil {
		// Standard output: one write, so that lines of concurrent calls do
		// not interleave; nothing to sync or rotate.
		j.buf = j.buf[:0]
		for _, l := range lines {
			j.buf = append(append(j.buf, l...), '\n')
		}
		if _, err := j.out.Write(j.buf); err != nil {
			return fmt.Errorf("cannot write jsonl to standard output: %w", err)
		}
		return nil
	}
	if j.f == nil {
		if err := j.open(); err != nil { // a rotation failed: go on in path
			return err
		}
	}
	j.buf = j.buf[:0]
	for _, l := range lines {
		if n := int64(len(j.buf) + len(l) + 1); j.size+int64(len(j.buf)) > 0 && j.size+n > j.cfg.MaxBytes {
			if err := j.flush(); err != nil {
				return err
			}
			if err := j.rotate(); err != nil {
				return err
			}
		}
		j.buf = append(append(j.buf, l...), '\n')
	}
	return j.flush()
}

// flush writes and syncs the buffered lines; on failure it cuts the file
// back to its last whole line.
func (j *JSONL) flush() error {
	if len(j.buf) == 0 {
		return nil
	}
	n, err := j.f.Write(j.buf)
	if err == nil {
		err = j.f.Sync()
	}
	if err != nil {
		if n > 0 {
			err = errors.Join(err, j.f.Truncate(j.size))
		}
		return fmt.Errorf("cannot write jsonl file %q: %w", j.cfg.Path, err)
	}
	j.size += int64(n)
	j.buf = j.buf[:0]
	return nil
}

// rotate shifts path.<n> to path.<n+1>, dropping the last, closes path as
// path.1 and opens a new path. The directory is synced, so that a synced
// line is not lost with a rename.
func (j *JSONL) rotate() error {
	p := j.cfg.Path
	if err := j.f.Close(); err != nil {
		return fmt.Errorf("cannot close jsonl file %q: %w", p, err)
	}
	j.f = nil
	if err := os.Remove(p + "." + strconv.Itoa(j.cfg.MaxFiles)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cannot rotate jsonl file %q: %w", p, err)
	}
	for n := j.cfg.MaxFiles - 1; n >= 1; n-- {
		from := p + "." + strconv.Itoa(n)
		if err := os.Rename(from, p+"."+strconv.Itoa(n+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("cannot rotate jsonl file %q: %w", from, err)
		}
	}
	if err := os.Rename(p, p+".1"); err != nil {
		return fmt.Errorf("cannot rotate jsonl file %q: %w", p, err)
	}
	if err := j.open(); err != nil {
		return err
	}
	return syncDir(filepath.Dir(p))
}

// open opens (or creates) path for appending and reads its size.
func (j *JSONL) open() error {
	f, err := os.OpenFile(j.cfg.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("cannot open jsonl file %q: %w", j.cfg.Path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("cannot open jsonl file %q: %w", j.cfg.Path, err)
	}
	j.f, j.size = f, st.Size()
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("cannot sync directory %q: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("cannot sync directory %q: %w", dir, err)
	}
	return nil
}

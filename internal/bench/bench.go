// Package bench is pipetel bench: it loads synthetic tasks into an embedded
// broker, then runs pipetel run as a process of its own over them and
// reports the processor's throughput, peak memory and state size, so a user
// can size a deployment on their own hardware.
package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.yaml.in/yaml/v3"

	"github.com/pipetel/pipetel/schemas"
)

// Options configure one bench run. Zero values mean the documented defaults.
type Options struct {
	// Tasks is how many synthetic tasks to load and process. Required.
	Tasks int
	// Partitions of the events topic. Default 8.
	Partitions int
	// Seed makes the synthetic tasks reproducible. Default 1.
	Seed uint64
	// Binary is the pipetel executable run as the processor. Required.
	Binary string
	// Dir holds the broker's data, the processor's state and its log. A
	// temporary directory, removed afterwards, when empty.
	Dir string
	// Config is YAML appended to the processor's generated configuration
	// (keys other than brokers, group, state dir and listen address), to
	// measure settings of one's own.
	Config string
	// Timeout bounds the processing step. Default 15m.
	Timeout time.Duration
	// Elasticsearch, when set, is the URL of an Elasticsearch (or
	// OpenSearch) node: the processor indexes the finished metrics into it
	// (under an index prefix of its own, removed afterwards), and the same
	// documents are then indexed again with plain sequential 5 000-document
	// _bulk requests, so that the two rates come from one run.
	Elasticsearch string
	// Progress receives a line per step. Nil discards them.
	Progress io.Writer
}

// Result is the JSON line pipetel bench prints.
type Result struct {
	Tasks            int     `json:"tasks"`
	Records          int64   `json:"records"`
	Partitions       int     `json:"partitions"`
	LoadSeconds      float64 `json:"load_seconds"`
	ElapsedSeconds   float64 `json:"elapsed_seconds"`
	RecordsPerSecond float64 `json:"records_per_second"`
	TasksPerSecond   float64 `json:"tasks_per_second"`
	PeakRSSMiB       float64 `json:"peak_rss_mib"`
	// DeliveredSeconds is, when the configuration enables publishers with
	// an outbox (Elasticsearch, Prometheus in process mode), the time from
	// the processor's start until every outbox was empty again.
	DeliveredSeconds float64 `json:"delivered_seconds,omitempty"`
	// With Options.Elasticsearch: the documents, pipetel's rate from its
	// start until the last one was searchable, the rate of plain _bulk
	// requests of the same documents until searchable, and their ratio.
	ElasticsearchDocs    int64   `json:"elasticsearch_docs,omitempty"`
	PipetelDocsPerSecond float64 `json:"pipetel_docs_per_second,omitempty"`
	BulkDocsPerSecond    float64 `json:"bulk_docs_per_second,omitempty"`
	ElasticsearchRatio   float64 `json:"elasticsearch_ratio,omitempty"`
	StateBytes           int64   `json:"state_bytes"`
	ChangelogRecords     int64   `json:"changelog_records"`
}

// ErrIncomplete is returned (wrapped) when the processor did not finish
// every task before Options.Timeout, or exited before it did.
var ErrIncomplete = errors.New("processor did not finish every task")

const group = "pipetel-bench"

// Run loads the tasks, runs the processor over them until every task is
// finished, and measures it.
func Run(ctx context.Context, o Options) (Result, error) {
	if o.Tasks <= 0 {
		return Result{}, fmt.Errorf("tasks: got %d, expected 1 or more", o.Tasks)
	}
	if o.Binary == "" {
		return Result{}, errors.New("binary: empty, expected the pipetel executable")
	}
	if o.Partitions == 0 {
		o.Partitions = 8
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Timeout == 0 {
		o.Timeout = 15 * time.Minute
	}
	progress := o.Progress
	if progress == nil {
		progress = io.Discard
	}
	if o.Dir == "" {
		dir, err := os.MkdirTemp("", "pipetel-bench-")
		if err != nil {
			return Result{}, fmt.Errorf("cannot create temporary directory: %w", err)
		}
		defer os.RemoveAll(dir)
		o.Dir = dir
	}
	cluster, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.SeedTopics(int32(o.Partitions), schemas.DefaultEventsTopic, schemas.DefaultNetworkTopic),
		kfake.DataDir(filepath.Join(o.Dir, "broker")),
		kfake.GroupMinSessionTimeout(100*time.Millisecond),
		kfake.AllowAutoTopicCreation(),
	)
	if err != nil {
		return Result{}, fmt.Errorf("cannot start embedded broker: %w", err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()

	res := Result{Tasks: o.Tasks, Partitions: o.Partitions}
	loadStarted := time.Now()
	res.Records, err = load(ctx, brokers, o.Tasks, o.Seed)
	if err != nil {
		return res, err
	}
	res.LoadSeconds = time.Since(loadStarted).Seconds()
	fmt.Fprintf(progress, "pipetel bench: loaded %d tasks (%d records) in %.1fs; processing\n", o.Tasks, res.Records, res.LoadSeconds)

	var es *esNode
	if o.Elasticsearch != "" {
		es = &esNode{url: strings.TrimRight(o.Elasticsearch, "/"), prefix: fmt.Sprintf("pipetel-bench-%d", time.Now().UnixNano()),
			client: &http.Client{Timeout: 2 * time.Minute}}
		defer func() {
			if err := es.deleteIndexes(context.WithoutCancel(ctx)); err != nil {
				fmt.Fprintf(progress, "pipetel bench: cannot delete the bench's indexes %s-*: %v\n", es.prefix, err)
			}
		}()
	}
	elapsed, delivered, rss, docs, err := process(ctx, o, brokers, es, progress)
	if err != nil {
		return res, err
	}
	if es != nil {
		res.ElasticsearchDocs = docs
		res.PipetelDocsPerSecond = float64(docs) / delivered.Seconds()
		fmt.Fprintf(progress, "pipetel bench: %d documents searchable %.1fs after pipetel started; indexing them again with plain _bulk requests\n", docs, delivered.Seconds())
		all, err := es.documents(ctx)
		if err != nil {
			return res, err
		}
		if int64(len(all)) != docs {
			return res, fmt.Errorf("read back %d documents of the %d pipetel indexed", len(all), docs)
		}
		took, err := es.bulkBaseline(ctx, all)
		if err != nil {
			return res, err
		}
		res.BulkDocsPerSecond = float64(docs) / took.Seconds()
		res.ElasticsearchRatio = res.PipetelDocsPerSecond / res.BulkDocsPerSecond
	}
	res.DeliveredSeconds = delivered.Seconds()
	res.ElapsedSeconds = elapsed.Seconds()
	res.RecordsPerSecond = float64(res.Records) / elapsed.Seconds()
	res.TasksPerSecond = float64(o.Tasks) / elapsed.Seconds()
	res.PeakRSSMiB = float64(rss) / (1 << 20)
	if res.StateBytes, err = dirBytes(filepath.Join(o.Dir, "state")); err != nil {
		return res, err
	}
	if res.ChangelogRecords, err = topicRecords(ctx, brokers, group+"-"+schemas.DefaultEventsTopic+"-changelog"); err != nil {
		return res, err
	}
	return res, nil
}

// process runs pipetel run over the loaded topics until events_total on its
// /metrics reaches the task count, and returns the time that took, the time
// until its outboxes were empty (0 without any), and the process's peak RSS
// in bytes.
func process(ctx context.Context, o Options, brokers []string, es *esNode, progress io.Writer) (elapsed, delivered time.Duration, rss, docs int64, err error) {
	addr, err := freeAddr()
	if err != nil {
		return 0, 0, 0, 0, err
	}
	cfgPath := filepath.Join(o.Dir, "pipetel.yaml")
	cfg, err := processorConfig(o.Config, brokers, filepath.Join(o.Dir, "state"), addr, es)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		return 0, 0, 0, 0, fmt.Errorf("cannot write config %q: %w", cfgPath, err)
	}
	logPath := filepath.Join(o.Dir, "pipetel.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return 0, 0, 0, 0, fmt.Errorf("cannot create log %q: %w", logPath, err)
	}
	defer logFile.Close()
	cmd := exec.Command(o.Binary, "run", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	started := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, 0, 0, fmt.Errorf("cannot start %q: %w", o.Binary, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	deadline := time.NewTimer(o.Timeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	// Uncompressed: a gzip-encoded /metrics ten times a second cost the
	// processor 4 % of its CPU, the scraper's work and not pipetel's
	// (a CPU profile of pipetel bench --tasks 1000000).
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableCompression: true}}
	nextReport := time.Now().Add(5 * time.Second)
	for {
		select {
		case <-ctx.Done():
			stop()
			return 0, 0, 0, 0, ctx.Err()
		case err := <-exited:
			return 0, 0, 0, 0, fmt.Errorf("%w: pipetel run exited (%v): %s", ErrIncomplete, err, lastLines(logPath, 5))
		case <-deadline.C:
			stop()
			return 0, 0, 0, 0, fmt.Errorf("%w: not within %v; see %s", ErrIncomplete, o.Timeout, logPath)
		case <-tick.C:
		}
		sums, err := scrape(ctx, client, addr)
		if err != nil {
			continue // not listening yet
		}
		n := int64(sums["events_total"])
		if elapsed == 0 && n >= int64(o.Tasks) {
			elapsed = time.Since(started)
		}
		if _, outboxes := sums["pipetel_outbox_depth"]; elapsed > 0 && (!outboxes || sums["pipetel_outbox_depth"] == 0) {
			if es != nil {
				// Accepted by the node is not yet searchable: until a
				// refresh shows every document.
				docs = int64(sums["events_total"] + sums["network_operations_total"])
				if err := es.waitCount(ctx, es.pipetelIndexes(), docs, o.Timeout); err != nil {
					stop()
					return 0, 0, 0, 0, err
				}
			}
			if outboxes {
				delivered = time.Since(started)
			}
			rss, err := peakRSS(cmd.Process.Pid)
			stop()
			return elapsed, delivered, rss, docs, err
		}
		if time.Now().After(nextReport) {
			fmt.Fprintf(progress, "pipetel bench: %d of %d tasks finished, %.0f metrics in outboxes after %.0fs\n",
				n, o.Tasks, sums["pipetel_outbox_depth"], time.Since(started).Seconds())
			nextReport = time.Now().Add(5 * time.Second)
		}
	}
}

// processorConfig is the user's YAML with the bench's own brokers, group,
// state directory and listen address set over it, and warn-level logs
// unless the user chose a level.
func processorConfig(user string, brokers []string, stateDir, addr string, es *esNode) ([]byte, error) {
	tree := map[string]any{}
	if err := yaml.Unmarshal([]byte(user), &tree); err != nil {
		return nil, fmt.Errorf("cannot decode the bench's --config: %w", err)
	}
	if tree == nil {
		tree = map[string]any{}
	}
	section := func(name string) map[string]any {
		m, ok := tree[name].(map[string]any)
		if !ok {
			m = map[string]any{}
			tree[name] = m
		}
		return m
	}
	section("processor")["brokers"] = brokers
	section("processor")["group_id"] = group
	section("state")["dir"] = stateDir
	section("http")["listen"] = addr
	if es != nil {
		sinks := section("sinks")
		esCfg, ok := sinks["elasticsearch"].(map[string]any)
		if !ok {
			esCfg = map[string]any{}
			sinks["elasticsearch"] = esCfg
		}
		esCfg["enabled"], esCfg["hosts"], esCfg["index_prefix"] = true, []string{es.url}, es.prefix
	}
	if _, ok := section("log")["level"]; !ok {
		section("log")["level"] = "warn"
	}
	return yaml.Marshal(tree)
}

// scrape sums every series of each metric family in the instance's text
// exposition.
func scrape(ctx context.Context, c *http.Client, addr string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: status %d", resp.StatusCode)
	}
	sums := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, _, _ := strings.Cut(line, "{")
		name, _, _ = strings.Cut(name, " ")
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sums[name] += v
		}
	}
	return sums, sc.Err()
}

// lastLines is the end of the processor's log, for an error message.
func lastLines(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return fmt.Sprintf("last lines of %s:\n%s", path, strings.Join(lines[max(0, len(lines)-n):], "\n"))
}

// peakRSS reads a process's high-water resident set (VmHWM) in bytes.
func peakRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("cannot read peak RSS of pid %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("cannot parse VmHWM %q: %w", rest, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("cannot find VmHWM in /proc/%d/status", pid)
}

func dirBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("cannot measure state directory %q: %w", dir, err)
	}
	return n, nil
}

// topicRecords sums the end offsets of a topic's partitions.
func topicRecords(ctx context.Context, brokers []string, topic string) (int64, error) {
	c := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: &kafka.Transport{}, Timeout: 10 * time.Second}
	meta, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return 0, fmt.Errorf("cannot describe topic %q: %w", topic, err)
	}
	if len(meta.Topics) != 1 || meta.Topics[0].Error != nil {
		return 0, nil // no changelog: processor.disable_changelog
	}
	var req []kafka.OffsetRequest
	for _, p := range meta.Topics[0].Partitions {
		req = append(req, kafka.LastOffsetOf(p.ID))
	}
	resp, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: req}})
	if err != nil {
		return 0, fmt.Errorf("cannot list offsets of topic %q: %w", topic, err)
	}
	var n int64
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			return 0, fmt.Errorf("cannot list offsets of topic %q partition %d: %w", topic, p.Partition, p.Error)
		}
		n += p.LastOffset
	}
	return n, nil
}

// freeAddr returns a loopback address nobody listens on, below Linux's
// ephemeral range (32768 up), so that no outgoing connection takes it as
// its local port before the processor binds it.
func freeAddr() (string, error) {
	for range 1000 {
		addr := fmt.Sprintf("127.0.0.1:%d", 23000+rand.IntN(9000))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		l.Close()
		return addr, nil
	}
	return "", errors.New("cannot find a free port in 23000..31999")
}

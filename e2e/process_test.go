package e2e

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	dto "github.com/prometheus/client_model/go"
)

// The fault tests run pipetel as real processes, so that kill -9 means what
// it means in production: no deferred call, no flush, Badger's files as the
// kernel left them.

// buildPipetel builds this command into a directory of t and returns the
// binary's path. Without -race: the fault tests are heavy enough.
func buildPipetel(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pipetel")
	started := time.Now()
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/pipetel").CombinedOutput()
	if err != nil {
		t.Fatalf("cannot build pipetel: %v\n%s", err, out)
	}
	t.Logf("built %s in %v", bin, time.Since(started).Round(time.Millisecond))
	return bin
}

// freeAddr returns a loopback address with a port nobody listens on now,
// below Linux's ephemeral range (32768 up), so that no outgoing connection
// takes it as its local port between the check and an instance's (re)start.
// An instance keeps its address across restarts, as a deployed one would,
// so the group sees the same advertised API address again.
func freeAddr(t *testing.T) string {
	t.Helper()
	for range 1000 {
		addr := fmt.Sprintf("127.0.0.1:%d", 23000+rand.IntN(9000))
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
			return addr
		}
	}
	t.Fatal("no free port in 23000..31999")
	return ""
}

// instanceConfig is what varies between the instances of a fault test.
type instanceConfig struct {
	brokers  []string
	topics   testTopics
	stateDir string
	listen   string
	// es and esPrefix enable the Elasticsearch sink when set.
	es       *esServer
	esPrefix string
	// maxOpenTasks and taskTimeout are left at their defaults when zero.
	maxOpenTasks int64
	taskTimeout  time.Duration
	// retention, retentionInterval and idleTimeAdvance, when set, make
	// expiry and retention sweeps run all along (kill -9 tests).
	retention, retentionInterval, idleTimeAdvance time.Duration
}

// yaml renders the configuration file of one instance: short group timings,
// so that a dead member's partitions move within seconds.
func (c instanceConfig) yaml() string {
	var b strings.Builder
	q := strconv.Quote
	brokers := make([]string, len(c.brokers))
	for i, a := range c.brokers {
		brokers[i] = q(a)
	}
	fmt.Fprintf(&b, "processor:\n")
	fmt.Fprintf(&b, "  brokers: [%s]\n", strings.Join(brokers, ", "))
	fmt.Fprintf(&b, "  group_id: %s\n", q(c.topics.group))
	fmt.Fprintf(&b, "  events_topic: %s\n", q(c.topics.events))
	fmt.Fprintf(&b, "  network_topic: %s\n", q(c.topics.network))
	fmt.Fprintf(&b, "  dead_letter_topic: %s\n", q(c.topics.deadLetter))
	fmt.Fprintf(&b, "  session_timeout: 3s\n  heartbeat_interval: 300ms\n  rebalance_timeout: 3s\n  commit_interval: 200ms\n")
	if c.maxOpenTasks > 0 {
		fmt.Fprintf(&b, "  max_open_tasks: %d\n", c.maxOpenTasks)
	}
	if c.taskTimeout > 0 {
		fmt.Fprintf(&b, "  task_timeout: %s\n", c.taskTimeout)
	}
	if c.retentionInterval > 0 {
		fmt.Fprintf(&b, "  retention_interval: %s\n", c.retentionInterval)
	}
	if c.idleTimeAdvance > 0 {
		fmt.Fprintf(&b, "  idle_time_advance: %s\n", c.idleTimeAdvance)
	}
	fmt.Fprintf(&b, "state:\n  dir: %s\n", q(c.stateDir))
	if c.retention > 0 {
		fmt.Fprintf(&b, "  retention: %s\n", c.retention)
	}
	fmt.Fprintf(&b, "http:\n  listen: %s\n", q(c.listen))
	fmt.Fprintf(&b, "sinks:\n  delivery:\n    min_backoff: 100ms\n    max_backoff: 2s\n")
	if c.es != nil {
		fmt.Fprintf(&b, "  elasticsearch:\n    enabled: true\n    hosts: [%s]\n    index_prefix: %s\n    opensearch: %t\n",
			q(c.es.url), q(c.esPrefix), os.Getenv("PIPETEL_TEST_ELASTICSEARCH_FLAVOR") == "opensearch")
	}
	fmt.Fprintf(&b, "log:\n  level: info\n")
	return b.String()
}

// instance is one `pipetel run` process, restartable on the same
// configuration, state directory and address.
type instance struct {
	t       *testing.T
	name    string
	bin     string
	config  string
	logPath string
	addr    string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when the current process has exited
	starts int
}

// newInstance writes cfg to a directory of t. The process starts with
// start; t's cleanup kills it if it still runs, and prints the tail of its
// log when t failed.
func newInstance(t *testing.T, bin, name string, cfg instanceConfig) *instance {
	t.Helper()
	dir := t.TempDir()
	in := &instance{t: t, name: name, bin: bin, addr: cfg.listen,
		config: filepath.Join(dir, name+".yaml"), logPath: filepath.Join(dir, name+".log")}
	must(t, os.WriteFile(in.config, []byte(cfg.yaml()), 0o644))
	t.Cleanup(func() {
		if in.running() {
			in.kill()
		}
		if !t.Failed() {
			return
		}
		t.Logf("--- warnings and errors in %s's log ---\n%s", name, strings.Join(in.logLines("level=WARN", "level=ERROR"), "\n"))
		t.Logf("--- last lines of %s's log (%s) ---\n%s", name, in.logPath, in.logTail(40))
		if keep := os.Getenv("PIPETEL_TEST_LOG_DIR"); keep != "" {
			dst := filepath.Join(keep, strings.ReplaceAll(t.Name(), "/", "_")+"."+name+".log")
			if data, err := os.ReadFile(in.logPath); err == nil && os.MkdirAll(keep, 0o755) == nil && os.WriteFile(dst, data, 0o644) == nil {
				t.Logf("kept %s's log as %s", name, dst)
			}
		}
	})
	return in
}

// start runs the process; its stdout and stderr go to the instance's log,
// which keeps the output of earlier runs.
func (in *instance) start() {
	in.t.Helper()
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cmd != nil && !isClosed(in.exited) {
		in.t.Fatalf("%s: start while running", in.name)
	}
	f, err := os.OpenFile(in.logPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		in.t.Fatal(err)
	}
	defer f.Close() // the child has its own descriptor
	in.starts++
	fmt.Fprintf(f, "=== %s: start %d at %s\n", in.name, in.starts, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(in.bin, "run", "--config", in.config)
	cmd.Stdout, cmd.Stderr = f, f
	// If the test binary dies (a -timeout panic skips cleanups), so do its
	// children.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		in.t.Fatalf("%s: cannot start pipetel: %v", in.name, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	in.cmd, in.exited = cmd, exited
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// running reports whether the current process is alive.
func (in *instance) running() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.cmd != nil && !isClosed(in.exited)
}

// pid is the current process's id.
func (in *instance) pid() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.cmd.Process.Pid
}

// kill sends SIGKILL and waits until the process is gone.
func (in *instance) kill() {
	in.mu.Lock()
	cmd, exited := in.cmd, in.exited
	in.mu.Unlock()
	if err := syscall.Kill(cmd.Process.Pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
		in.t.Errorf("%s: cannot kill pid %d: %v", in.name, cmd.Process.Pid, err)
	}
	<-exited
}

// terminate sends SIGTERM and waits for the drain; it kills the process and
// fails the test when the drain takes longer than timeout. It returns how
// long the drain took.
func (in *instance) terminate(timeout time.Duration) time.Duration {
	in.t.Helper()
	in.mu.Lock()
	cmd, exited := in.cmd, in.exited
	in.mu.Unlock()
	started := time.Now()
	if err := syscall.Kill(cmd.Process.Pid, syscall.SIGTERM); err != nil {
		in.t.Fatalf("%s: cannot send SIGTERM to pid %d: %v", in.name, cmd.Process.Pid, err)
	}
	select {
	case <-exited:
	case <-time.After(timeout):
		in.kill()
		in.t.Fatalf("%s: still running %v after SIGTERM; killed", in.name, timeout)
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		in.t.Errorf("%s: exit status %d after SIGTERM; log:\n%s", in.name, code, in.logTail(30))
	}
	return time.Since(started)
}

// logTail returns the last n lines of the instance's log.
func (in *instance) logTail(n int) string {
	data, err := os.ReadFile(in.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// logLines returns the lines of the instance's log that contain any of
// substrs.
func (in *instance) logLines(substrs ...string) []string {
	data, _ := os.ReadFile(in.logPath)
	var out []string
	for line := range strings.Lines(string(data)) {
		for _, sub := range substrs {
			if strings.Contains(line, sub) {
				out = append(out, strings.TrimRight(line, "\n"))
				break
			}
		}
	}
	return out
}

var logMsg = regexp.MustCompile(`level=(WARN|ERROR) msg=("(?:[^"\\]|\\.)*"|\S+)`)

// problems counts the instance's warnings and errors by level and message.
func (in *instance) problems() string {
	counts := map[string]int{}
	for _, line := range in.logLines("level=WARN", "level=ERROR") {
		if m := logMsg.FindStringSubmatch(line); m != nil {
			counts[m[1]+" "+m[2]]++
		}
	}
	keys := slices.Sorted(maps.Keys(counts))
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %4d × %s", counts[k], k)
	}
	return b.String()
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// get returns the status and body of GET path on the instance.
func (in *instance) get(path string) (int, []byte, error) {
	resp, err := httpClient.Get("http://" + in.addr + path)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// metrics scrapes the instance's /metrics.
func (in *instance) metrics() (map[string]*dto.MetricFamily, error) {
	code, body, err := in.get("/metrics")
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics of %s: status %d", in.name, code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(bytes.NewReader(body))
}

// assigned is the number of input partitions the instance reports it
// owns, or -1 when it does not answer.
func (in *instance) assigned() float64 {
	fams, err := in.metrics()
	if err != nil {
		return -1
	}
	return sumMetric(fams, "pipetel_assigned_partitions", nil)
}

// waitUp waits until the process answers on /metrics and owns at least one
// partition, failing early if it exits.
func (in *instance) waitUp(timeout time.Duration) time.Duration {
	in.t.Helper()
	started := time.Now()
	waitFor(in.t, timeout, in.name+" to join the group and own partitions", func() (bool, string) {
		if !in.running() {
			in.t.Fatalf("%s exited while starting; log:\n%s", in.name, in.logTail(30))
		}
		n := in.assigned()
		return n > 0, fmt.Sprintf("assigned partitions %v", n)
	})
	return time.Since(started)
}

// peakRSS reads the process's peak resident set size (VmHWM) in bytes.
func (in *instance) peakRSS() (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", in.pid()))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", in.pid())
}

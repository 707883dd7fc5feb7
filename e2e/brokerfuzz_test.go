package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pipetel/pipetel/internal/testbroker"
	"github.com/pipetel/pipetel/internal/testclock"
	"github.com/pipetel/pipetel/processor"
	"github.com/pipetel/pipetel/schemas"
)

// jfield is one member of a hand-built JSON object; val is raw JSON.
type jfield struct{ key, val string }

type jobject []jfield

func (o jobject) bytes() []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Quote(f.key))
		b.WriteByte(':')
		b.WriteString(f.val)
	}
	b.WriteByte('}')
	return b.Bytes()
}

func (o jobject) index(key string) int {
	for i, f := range o {
		if f.key == key {
			return i
		}
	}
	return -1
}

// with returns a copy of o with key's value replaced.
func (o jobject) with(key, val string) jobject {
	c := append(jobject(nil), o...)
	c[c.index(key)].val = val
	return c
}

// jstr quotes s as a JSON string as it is: s holds no quote, backslash or
// control character, and may hold bytes that are not UTF-8 on purpose.
func jstr(s string) string { return `"` + s + `"` }

// fuzzGen builds the records of TestFuzzThroughBroker: invalid ones, each
// invalid by construction with a known code, and the valid base records
// they are mutated from.
type fuzzGen struct {
	r    *rand.Rand
	when string // a valid RFC 3339 time
}

func (g *fuzzGen) pick(vals ...string) string { return vals[g.r.IntN(len(vals))] }

func (g *fuzzGen) ident(prefix string) string { return prefix + strconv.Itoa(g.r.IntN(1000)) }

// base is a valid record of task id: an event start, retry or end, or a
// network start or end, with a random choice of its optional fields, its
// members in a random order (the contract does not fix it).
func (g *fuzzGen) base(id string, network bool) jobject {
	o := g.members(id, network)
	g.r.Shuffle(len(o), func(i, j int) { o[i], o[j] = o[j], o[i] })
	return o
}

func (g *fuzzGen) members(id string, network bool) jobject {
	opt := func() bool { return g.r.IntN(2) == 0 }
	if network {
		o := jobject{{"schema", jstr(schemas.NetworkSchema)}}
		if opt() {
			o = append(o, jfield{"kind", jstr("start")}, jfield{"task_id", jstr(id)})
			if opt() {
				o = append(o, jfield{"op_id", jstr(g.ident("op-"))})
			}
			o = append(o, jfield{"host", jstr(g.ident("host-"))}, jfield{"port", strconv.Itoa(1 + g.r.IntN(65535))})
			if opt() {
				o = append(o, jfield{"operation", jstr(g.pick("db_query", "remote_call", "s3_put"))})
			}
			return append(o, jfield{"time", jstr(g.when)})
		}
		o = append(o, jfield{"kind", jstr("end")}, jfield{"task_id", jstr(id)})
		if opt() {
			o = append(o, jfield{"op_id", jstr(g.ident("op-"))})
		}
		o = append(o, jfield{"time", jstr(g.when)})
		if opt() {
			o = append(o, jfield{"bytes_sent", strconv.Itoa(g.r.IntN(1 << 20))})
		}
		if opt() {
			o = append(o, jfield{"bytes_received", strconv.Itoa(g.r.IntN(1 << 20))})
		}
		if opt() {
			o = append(o, jfield{"error", jstr("reset by peer")})
		}
		return o
	}
	o := jobject{{"schema", jstr(schemas.EventSchema)}}
	switch g.r.IntN(3) {
	case 0:
		o = append(o, jfield{"kind", jstr("start")}, jfield{"task_id", jstr(id)}, jfield{"event_name", jstr(g.ident("ev-"))},
			jfield{"time", jstr(g.when)})
		if opt() {
			o = append(o, jfield{"pipeline_id", jstr(g.ident("pl-"))})
		}
		if opt() {
			o = append(o, jfield{"process_id", strconv.Itoa(g.r.IntN(1 << 30))})
		}
	case 1:
		o = append(o, jfield{"kind", jstr("end")}, jfield{"task_id", jstr(id)}, jfield{"time", jstr(g.when)})
		if opt() {
			o = append(o, jfield{"error", jstr("boom")})
		}
	default:
		o = append(o, jfield{"kind", jstr("retry")}, jfield{"task_id", jstr(id)}, jfield{"time", jstr(g.when)})
	}
	return o
}

// Field classes of the contract, for the mutations.
var (
	idFields       = []string{"task_id", "event_name", "pipeline_id", "op_id", "host", "operation"}
	nonEmptyFields = []string{"task_id", "event_name", "host", "operation"}
	intFields      = []string{"process_id", "port", "bytes_sent", "bytes_received"}
)

// present returns the members of o among keys.
func present(o jobject, keys []string) []string {
	var out []string
	for _, k := range keys {
		if o.index(k) >= 0 {
			out = append(out, k)
		}
	}
	return out
}

// notJSONStart are bytes no JSON value starts with, nor whitespace.
var notJSONStart = func() (out []byte) {
	for c := 0; c < 256; c++ {
		if !strings.ContainsRune("{[\"-0123456789tfn \t\r\n", rune(c)) {
			out = append(out, byte(c))
		}
	}
	return out
}()

// invalid returns an invalid record value for key (which is also its
// task_id, unless the mutation is about that), and the code the decoder
// must give it.
func (g *fuzzGen) invalid(key string, network bool) ([]byte, schemas.Code) {
	o := g.base(key, network)
	for {
		switch g.r.IntN(20) {
		case 0, 1: // random bytes
			b := make([]byte, 1+g.r.IntN(300))
			for i := range b {
				b[i] = byte(g.r.UintN(256))
			}
			b[0] = notJSONStart[g.r.IntN(len(notJSONStart))]
			return b, schemas.CodeMalformedJSON
		case 2, 3: // a valid record cut short: it loses at least its closing brace
			b := o.bytes()
			return b[:1+g.r.IntN(len(b)-1)], schemas.CodeMalformedJSON
		case 4: // something after the object
			return append(o.bytes(), g.pick("x", "{}", ",", "]", "1")...), schemas.CodeMalformedJSON
		case 5: // a JSON value that is not an object
			return []byte(g.pick(`[1,2]`, `"start"`, `42`, `null`, `true`, `[]`, `-0.5e3`)), schemas.CodeWrongType
		case 6, 7: // one field of the wrong JSON type
			f := o[g.r.IntN(len(o))].key
			if present(o, intFields) != nil && g.r.IntN(2) == 0 {
				f = present(o, intFields)[0]
			}
			if slices.Contains(intFields, f) {
				return o.with(f, g.pick(`"12"`, `true`, `null`, `[]`, `{}`, `1.5`, `1e3`, `"x"`)).bytes(), schemas.CodeWrongType
			}
			return o.with(f, g.pick(`123`, `-1`, `true`, `false`, `null`, `[]`, `["a"]`, `{}`, `{"x":"y"}`, `1.5`)).bytes(), schemas.CodeWrongType
		case 8, 9: // a bad time
			w := g.when
			bad := g.pick("yesterday", "", "0001-01-01T00:00:00Z", w[:11]+"25"+w[13:], w[:5]+"13"+w[7:],
				strings.TrimSuffix(w, "Z"), w[:17]+"60"+w[19:], w[:10], strconv.FormatInt(testclock.Now().Unix(), 10))
			return o.with("time", jstr(bad)).bytes(), schemas.CodeBadTime
		case 10: // an unknown kind (network records have no retry)
			kinds := []string{"pause", "START", "finish", "", "retries"}
			if network {
				kinds = append(kinds, "retry", "retry", "retry")
			}
			return o.with("kind", jstr(g.pick(kinds...))).bytes(), schemas.CodeUnknownKind
		case 11: // an unknown schema
			return o.with("schema", jstr(g.pick("pipetel.event/v2", "pipetel.metric/v1", "", "PIPETEL.EVENT/V1"))).bytes(), schemas.CodeUnknownSchema
		case 12, 13: // an identifier over 512 bytes
			fs := present(o, idFields)
			f := fs[g.r.IntN(len(fs))]
			n := schemas.MaxIDBytes + 1 + g.r.IntN(1500)
			s := strings.Repeat(string(rune('a'+g.r.IntN(26))), n)
			if g.r.IntN(3) == 0 {
				s = strings.Repeat("é", n/2+1) // over the bound in bytes, not in runes
			}
			return o.with(f, jstr(s)).bytes(), schemas.CodeTooLong
		case 14: // a required string empty
			fs := present(o, nonEmptyFields)
			if len(fs) == 0 {
				continue
			}
			return o.with(fs[g.r.IntN(len(fs))], `""`).bytes(), schemas.CodeEmptyValue
		case 15: // a required field missing
			fs := present(o, []string{"schema", "kind", "task_id", "time", "event_name", "host", "port"})
			i := o.index(fs[g.r.IntN(len(fs))])
			return append(append(jobject(nil), o[:i]...), o[i+1:]...).bytes(), schemas.CodeMissingField
		case 16: // a field that does not belong, or a duplicate
			if g.r.IntN(2) == 0 {
				i := g.r.IntN(len(o))
				c := append(append(jobject(nil), o[:i+1]...), o[i:]...)
				return c.bytes(), schemas.CodeDuplicateField
			}
			extra := jfield{g.pick("foo", "Task_ID", "taskId", "retries"), `1`}
			if o.index("port") < 0 {
				extra = jfield{"port", `443`} // belongs to network starts only
			}
			c := append(append(jobject(nil), o...), extra)
			g.r.Shuffle(len(c), func(i, j int) { c[i], c[j] = c[j], c[i] })
			return c.bytes(), schemas.CodeUnknownField
		case 17: // an integer out of its range
			fs := present(o, intFields)
			if len(fs) == 0 {
				continue
			}
			switch f := fs[g.r.IntN(len(fs))]; f {
			case "port":
				return o.with(f, g.pick("0", "65536", "-1", "99999999999999999999")).bytes(), schemas.CodeOutOfRange
			default:
				if g.r.IntN(2) == 0 {
					return o.with(f, "9223372036854775808").bytes(), schemas.CodeOutOfRange
				}
				return o.with(f, g.pick("-1", "-9223372036854775808", "-42")).bytes(), schemas.CodeNegativeValue
			}
		case 18: // a string that is not UTF-8
			fs := present(o, idFields)
			return o.with(fs[g.r.IntN(len(fs))], jstr(g.pick("a\xffb", "\xc3", "x\xed\xa0\x80", `\ud800`, `a\udc00b`))).bytes(), schemas.CodeInvalidUTF8
		case 19: // over max_record_bytes: a valid record padded with whitespace
			if g.r.IntN(50) != 0 { // rare: each is 64 KiB
				continue
			}
			return append(o.bytes(), bytes.Repeat([]byte(" "), schemas.DefaultMaxRecordBytes)...), schemas.CodeOversized
		}
	}
}

// fuzzTask is one valid task of the plan.
type fuzzTask struct {
	id       string
	name     string
	start    time.Time
	duration time.Duration
	retries  int
	failed   bool
}

// TestFuzzThroughBroker (issue 10): 100 000 random, truncated and mutated
// records, each invalid by construction with a known code and a key of its
// own, interleaved with 10 000 valid tasks, through the broker. The
// instance must not stop; every valid task must come out exactly as
// planned; every invalid record must be in the dead-letter topic exactly
// once, unchanged, with its code; the counters must agree.
func TestFuzzThroughBroker(t *testing.T) {
	seed := uint64(20261201)
	if s := os.Getenv("PIPETEL_FUZZ_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		must(t, err)
		seed = v
	}
	t.Logf("seed %d (PIPETEL_FUZZ_SEED replays another)", seed)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	const (
		parts    = 4
		nInvalid = 100_000
		nTasks   = 10_000
	)
	b := testbroker.Start(t)
	tt := newTestTopics(t, b, parts)
	base := testclock.Now().Add(-40 * time.Minute).Truncate(time.Millisecond)
	g := &fuzzGen{r: r, when: base.UTC().Format(time.RFC3339Nano)}

	// The plan: invalid records keyed inv-<n> (task ids of their own,
	// never a valid task's), valid tasks ok-<n>.
	type invalidRec struct {
		msg  kafka.Message
		code schemas.Code
	}
	invalid := make([]invalidRec, nInvalid)
	dec := schemas.Decoder{}
	byCode := map[schemas.Code]int{}
	for n := range invalid {
		key := fmt.Sprintf("inv-%06d", n)
		network := r.IntN(5) == 0
		topic := tt.events
		if network {
			topic = tt.network
		}
		var val []byte
		code := schemas.CodeKeyMismatch
		if r.IntN(25) == 0 { // valid, but keyed otherwise than its task_id
			val = g.base(key+"/other", network).bytes()
		} else {
			val, code = g.invalid(key, network)
		}
		// The construction is the oracle; the decoder must agree before
		// the broker is involved, or the plan itself is wrong.
		rec, err := dec.Decode(val)
		var de *schemas.DecodeError
		switch {
		case code == schemas.CodeKeyMismatch && (err != nil || rec.TaskID == key):
			t.Fatalf("record %s built for key_mismatch: %v %q", key, err, val)
		case code != schemas.CodeKeyMismatch && (!errors.As(err, &de) || de.Code != code):
			t.Fatalf("record %s built for %s, decoder says %v: %.300q", key, code, err, val)
		}
		byCode[code]++
		invalid[n] = invalidRec{msg: kafka.Message{Topic: topic, Key: []byte(key), Value: val}, code: code}
	}
	tasks := make([]fuzzTask, nTasks)
	var records [][]kafka.Message // per task, in order
	totalValid := 0
	for i := range tasks {
		ft := fuzzTask{id: fmt.Sprintf("ok-%05d", i), name: []string{"extract", "transform", "load"}[r.IntN(3)],
			start: base.Add(time.Duration(i) * 100 * time.Microsecond), duration: time.Duration(1+r.IntN(10_000)) * time.Millisecond,
			retries: r.IntN(4), failed: r.IntN(10) == 0}
		tasks[i] = ft
		rec := schemas.Record{Schema: schemas.EventSchema, Kind: schemas.KindStart, TaskID: ft.id, EventName: ft.name, Time: ft.start, PipelineID: "fuzz"}
		var msgs []kafka.Message
		add := func(rec schemas.Record) {
			v, err := schemas.Encode(rec)
			must(t, err)
			msgs = append(msgs, kafka.Message{Topic: tt.events, Key: []byte(ft.id), Value: v})
		}
		add(rec)
		for k := range ft.retries {
			add(schemas.Record{Schema: schemas.EventSchema, Kind: schemas.KindRetry, TaskID: ft.id, Time: ft.start.Add(time.Duration(k+1) * time.Microsecond)})
		}
		end := schemas.Record{Schema: schemas.EventSchema, Kind: schemas.KindEnd, TaskID: ft.id, Time: ft.start.Add(ft.duration)}
		if ft.failed {
			end.Error = "boom " + ft.id
		}
		add(end)
		records = append(records, msgs)
		totalValid += len(msgs)
	}
	// Interleave: tasks run 64 at a time, their records in order; the
	// invalid records fall between them at random.
	stream := make([]kafka.Message, 0, nInvalid+totalValid)
	active := []int{}
	nextTask, nextInvalid := 0, 0
	pos := make([]int, nTasks)
	for len(stream) < cap(stream) {
		for len(active) < 64 && nextTask < nTasks {
			active = append(active, nextTask)
			nextTask++
		}
		leftInvalid, leftValid := nInvalid-nextInvalid, cap(stream)-len(stream)-(nInvalid-nextInvalid)
		if leftValid == 0 || r.IntN(leftInvalid+leftValid) < leftInvalid {
			stream = append(stream, invalid[nextInvalid].msg)
			nextInvalid++
			continue
		}
		j := r.IntN(len(active))
		ti := active[j]
		stream = append(stream, records[ti][pos[ti]])
		if pos[ti]++; pos[ti] == len(records[ti]) {
			active[j] = active[len(active)-1]
			active = active[:len(active)-1]
		}
	}
	t.Logf("plan: %d invalid records (%v), %d valid records of %d tasks", nInvalid, byCode, totalValid, nTasks)

	a := startApp(t, testConfig(b, tt, t.TempDir()))
	started := time.Now()
	w := &kafka.Writer{Addr: kafka.TCP(b.Addrs...), Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll,
		BatchSize: 2000, BatchTimeout: 2 * time.Millisecond, Transport: &kafka.Transport{}}
	defer w.Close()
	pctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for from := 0; from < len(stream); from += 10_000 {
		must(t, w.WriteMessages(pctx, stream[from:min(from+10_000, len(stream))]...))
	}
	t.Logf("produced %d records in %v", len(stream), time.Since(started).Round(time.Millisecond))

	waitFor(t, 120*time.Second, "every valid task finished and every invalid record dead-lettered", func() (bool, string) {
		a.checkRunning(t)
		f := a.scrape(t)
		done := sumMetric(f, "events_total", nil)
		bad := sumMetric(f, "pipetel_invalid_records_total", nil)
		dead := sumMetric(f, "pipetel_dead_letters_total", nil)
		consumed := sumMetric(f, "pipetel_records_consumed_total", nil)
		return done == nTasks && bad == nInvalid && dead == nInvalid && consumed == float64(len(stream)),
			fmt.Sprintf("finished %v invalid %v dead letters %v consumed %v of %d", done, bad, dead, consumed, len(stream))
	})
	t.Logf("all applied %v after the first record was produced", time.Since(started).Round(time.Millisecond))

	t.Run("counters", func(t *testing.T) {
		f := a.scrape(t)
		check := func(name string, labels map[string]string, want float64) {
			t.Helper()
			if got := sumMetric(f, name, labels); got != want {
				t.Errorf("%s%v = %v, want %v", name, labels, got, want)
			}
		}
		for _, code := range schemas.Codes {
			check("pipetel_invalid_records_total", map[string]string{"code": string(code)}, float64(byCode[code]))
		}
		check("pipetel_invalid_records_total", nil, nInvalid)
		check("pipetel_dead_letters_total", nil, nInvalid)
		check("pipetel_records_consumed_total", nil, float64(len(stream)))
		check("pipetel_duplicate_records_total", nil, 0)
		check("pipetel_late_records_total", nil, 0)
		check("pipetel_open_tasks", nil, 0)
		check("pipetel_open_network_operations", nil, 0)
		check("pipetel_expired_total", nil, 0)
		var retries, failed float64
		for _, ft := range tasks {
			retries += float64(ft.retries)
			if ft.failed {
				failed++
			}
		}
		check("events_total", map[string]string{"status": "failed"}, failed)
		check("events_total", map[string]string{"status": "completed"}, nTasks-failed)
		check("event_retries_total", nil, retries)
		check("network_operations_total", nil, 0)
	})
	t.Run("tasks", func(t *testing.T) {
		plan := map[string]fuzzTask{}
		for _, ft := range tasks {
			plan[ft.id] = ft
		}
		all := eventsWhere(t, a, "")
		if len(all) != nTasks {
			t.Errorf("%d events in the store, want the %d valid tasks", len(all), nTasks)
		}
		for _, m := range all {
			ft, ok := plan[m.TaskID]
			if !ok {
				t.Fatalf("event %.80q is not a valid task of the plan: %.300s", m.TaskID, describe(m))
			}
			delete(plan, m.TaskID)
			status, msg := schemas.StatusCompleted, ""
			if ft.failed {
				status, msg = schemas.StatusFailed, "boom "+ft.id
			}
			if m.Status != status || m.Error != msg || m.RetryCount != ft.retries || m.EventName != ft.name || m.PipelineID != "fuzz" ||
				m.StartTime == nil || !m.StartTime.Equal(ft.start) || m.EndTime == nil || !m.EndTime.Equal(ft.start.Add(ft.duration)) ||
				m.DurationSeconds == nil || *m.DurationSeconds != ft.duration.Seconds() {
				t.Errorf("task %s: got %s, want %+v", ft.id, describe(m), ft)
			}
		}
		if len(plan) != 0 {
			t.Errorf("%d valid tasks missing from the store", len(plan))
		}
	})
	t.Run("dead letters", func(t *testing.T) {
		got := readTopic(t, b, tt.deadLetter, parts, 60*time.Second)
		want := map[string]invalidRec{}
		for _, in := range invalid {
			want[string(in.msg.Key)] = in
		}
		bad := 0
		for _, m := range got {
			in, ok := want[string(m.Key)]
			if !ok {
				t.Errorf("dead letter with key %.40q: not an invalid record of the plan, or dead-lettered twice", m.Key)
				bad++
				continue
			}
			delete(want, string(m.Key))
			h := headers(m)
			if h[processor.HeaderErrorCode] != string(in.code) || h[processor.HeaderSourceTopic] != in.msg.Topic ||
				h[processor.HeaderSourcePartition] != strconv.Itoa(partitionOf(in.msg.Key, parts)) || h[processor.HeaderError] == "" ||
				h[processor.HeaderSourceOffset] == "" || h[processor.HeaderCut] != "" || !bytes.Equal(m.Value, in.msg.Value) {
				t.Errorf("dead letter %s: headers %v, value %.80q; want code %s from %s, the value unchanged %.80q",
					m.Key, h, m.Value, in.code, in.msg.Topic, in.msg.Value)
				bad++
			}
			if bad > 20 {
				t.Fatal("too many bad dead letters")
			}
		}
		if len(got) != nInvalid || len(want) != 0 {
			t.Errorf("%d dead letters, want %d; %d invalid records not dead-lettered", len(got), nInvalid, len(want))
		}
	})
	a.checkRunning(t)
	must(t, a.stop()) // a clean shutdown, no error
	t.Logf("done %v after the first record was produced", time.Since(started).Round(time.Millisecond))
}

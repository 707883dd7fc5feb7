package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzDecode checks that Decode never panics, that its errors are well
// formed, that it agrees with encoding/json on what is JSON and on the values
// of the fields, and that every record it accepts encodes and decodes back to
// itself. The seed corpus is in testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Decode(b)
		if err != nil {
			checkDecodeError(t, b, err)
			return
		}
		if !json.Valid(b) {
			t.Fatalf("Decode accepted %q, which encoding/json calls invalid", b)
		}
		// encoding/json matches names case-insensitively and lets the last
		// duplicate win; the decoder has rejected both, so it must read the
		// same values.
		var std struct {
			Schema        *string `json:"schema"`
			Kind          *string `json:"kind"`
			TaskID        *string `json:"task_id"`
			EventName     *string `json:"event_name"`
			PipelineID    *string `json:"pipeline_id"`
			Error         *string `json:"error"`
			OpID          *string `json:"op_id"`
			Host          *string `json:"host"`
			Operation     *string `json:"operation"`
			ProcessID     *int64  `json:"process_id"`
			Port          int     `json:"port"`
			BytesSent     int64   `json:"bytes_sent"`
			BytesReceived int64   `json:"bytes_received"`
		}
		if err := json.Unmarshal(b, &std); err != nil {
			t.Fatalf("encoding/json rejected %q: %v", b, err)
		}
		str := func(p *string) string {
			if p == nil {
				return ""
			}
			return *p
		}
		if str(std.Schema) != r.Schema || str(std.Kind) != string(r.Kind) || str(std.TaskID) != r.TaskID ||
			str(std.EventName) != r.EventName || str(std.PipelineID) != r.PipelineID || str(std.Error) != r.Error ||
			str(std.OpID) != r.OpID || str(std.Host) != r.Host || std.Port != r.Port ||
			std.BytesSent != r.BytesSent || std.BytesReceived != r.BytesReceived ||
			(std.ProcessID == nil) != (r.ProcessID == nil) || std.ProcessID != nil && *std.ProcessID != *r.ProcessID ||
			std.Operation != nil && *std.Operation != r.Operation {
			t.Fatalf("Decode(%q) = %+v; encoding/json reads %+v", b, r, std)
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("Decode(%q) = %+v, which Validate rejects: %v", b, r, err)
		}
		enc, err := Encode(r)
		if err != nil {
			t.Fatalf("Encode(Decode(%q)): %v", b, err)
		}
		r2, err := Decode(enc)
		if err != nil {
			t.Fatalf("Decode(Encode(Decode(%q))) of %q: %v", b, enc, err)
		}
		if !reflect.DeepEqual(r, r2) {
			t.Fatalf("round trip of %q via %q:\n got %+v\nwant %+v", b, enc, r2, r)
		}
		if enc2, _ := Encode(r2); !bytes.Equal(enc, enc2) {
			t.Fatalf("canonical form not stable: %q then %q", enc, enc2)
		}
	})
}

func checkDecodeError(t *testing.T, b []byte, err error) {
	t.Helper()
	var de *DecodeError
	if !errors.As(err, &de) || !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("Decode(%q): %v is not a *DecodeError wrapping ErrInvalidRecord", b, err)
	}
	if !slices.Contains(Codes, de.Code) {
		t.Fatalf("Decode(%q): code %q not in Codes", b, de.Code)
	}
	// Quoting can turn each of the 64 bytes into \xNN; nothing should be
	// larger than that.
	if len(de.Value) > 4*maxRendered+16 || len(de.Field) > maxRendered+3 || de.Expected == "" && de.Code != CodeMissingField {
		t.Fatalf("Decode(%q): badly bounded error %#v", b, de)
	}
	_ = err.Error()
	if len(b) > DefaultMaxRecordBytes {
		if de.Code != CodeOversized {
			t.Fatalf("Decode of %d bytes: %v, want oversized", len(b), err)
		}
		return
	}
	// Syntax errors are exactly what encoding/json calls invalid, except for
	// nesting beyond the decoder's limit.
	valid := json.Valid(b)
	if valid && de.Code == CodeMalformedJSON && bytes.Count(b, []byte("["))+bytes.Count(b, []byte("{")) < maxDepth {
		t.Fatalf("Decode(%q): %v, but encoding/json calls it valid", b, err)
	}
	if !valid && de.Code != CodeMalformedJSON {
		t.Fatalf("Decode(%q): %v, but encoding/json calls it invalid", b, err)
	}
}

// TestFuzzCorpusHasFixtures keeps the seed corpus in step with the fixtures:
// each fixture is a seed, named <valid|invalid>_<fixture>.
func TestFuzzCorpusHasFixtures(t *testing.T) {
	for _, sub := range []string{"valid", "invalid"} {
		files, err := filepath.Glob(filepath.Join("testdata", sub, "*.json"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no fixtures in testdata/%s: %v", sub, err)
		}
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			seed := filepath.Join("testdata", "fuzz", "FuzzDecode", sub+"_"+strings.TrimSuffix(filepath.Base(file), ".json"))
			got, err := os.ReadFile(seed)
			if err != nil {
				t.Fatalf("fixture %s has no seed: %v", file, err)
			}
			want := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
			if string(got) != want {
				t.Fatalf("seed %s does not hold %s:\n got %q\nwant %q", seed, file, got, want)
			}
		}
	}
}

// FuzzEncode builds records from arbitrary field values: Encode must succeed
// exactly when Validate does, and then decode back to the same record, so
// that string escaping and time formatting cannot produce a value the decoder
// rejects.
func FuzzEncode(f *testing.F) {
	f.Add(uint8(0), "task-1", "load", "p", "", "h", 443, int64(7), int64(0), int64(1714564800123456789), int64(0))
	f.Add(uint8(1), "t", "", "", "boom \"\\\n\x01\u2028", "", 0, int64(0), int64(0), int64(1), int64(0))
	f.Add(uint8(3), "t", "", "", "", "db", 65535, int64(0), int64(0), int64(-62135596800), int64(0))
	f.Add(uint8(4), "t", "", "", "reset", "", 0, int64(0), int64(1<<63-1), int64(253402300799), int64(999999999))
	f.Fuzz(func(t *testing.T, which uint8, taskID, name, pipeline, errText, host string, port int, pid, bytes, sec, nsec int64) {
		sh := shapes[int(which)%len(shapes)]
		r := Record{Schema: sh.schema, Kind: sh.kind, TaskID: taskID, Time: time.Unix(sec, nsec).In(time.FixedZone("", int(nsec%86400)))}
		switch sh {
		case eventStart:
			r.EventName, r.PipelineID = name, pipeline
			if pid != 0 {
				r.ProcessID = &pid
			}
		case eventEnd:
			r.Error = errText
		case networkStart:
			r.OpID, r.Host, r.Port, r.Operation = pipeline, host, port, name
		case networkEnd:
			r.OpID, r.Error, r.BytesSent, r.BytesReceived = pipeline, errText, bytes, pid
		}
		enc, err := Encode(r)
		if verr := r.Validate(); (err == nil) != (verr == nil) {
			t.Fatalf("Encode(%+v) error %v, Validate %v", r, err, verr)
		}
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || !slices.Contains(Codes, de.Code) {
				t.Fatalf("Encode(%+v): %v", r, err)
			}
			return
		}
		got, err := Decode(enc)
		if err != nil {
			t.Fatalf("Decode(Encode(%+v)) of %q: %v", r, enc, err)
		}
		want := r
		want.Time = r.Time.UTC()
		if sh == networkStart && want.Operation == "" {
			want.Operation = DefaultOperation
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip via %q:\n got %+v\nwant %+v", enc, got, want)
		}
	})
}

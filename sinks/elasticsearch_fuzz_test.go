package sinks

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
)

// FuzzBulkResponse feeds arbitrary bodies to the bulk-response parser: it must
// never panic, must return one result per document or an ErrBadResponse, and
// must refuse any response whose item count differs from the documents sent.
func FuzzBulkResponse(f *testing.F) {
	seeds := []string{
		`{"took":3,"errors":false,"items":[{"index":{"_id":"d0","status":201}},{"index":{"_id":"d1","status":200}}]}`,
		`{"errors":true,"items":[{"index":{"_id":"d0","status":400,"error":{"type":"mapper_parsing_exception","reason":"x","caused_by":{"type":"y","reason":"z"}}}}]}`,
		`{"errors":true,"items":[{"index":{"_id":"d0","status":429,"error":"old style"}}]}`,
		`{"items":[]}`, `{"items":null}`, `{"took":1}`, `[]`, `null`, ``, `<html>`,
		`{"items":[{"index":{}}]}`, `{"items":[{"index":{"status":201},"create":{"status":201}}]}`,
		`{"items":[{"index":{"status":201,"error":123}}]}`, `{"items":[{"index":{"_id":5,"status":201}}]}`,
	}
	for _, s := range seeds {
		for n := range 3 {
			f.Add([]byte(s), uint8(n))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, n uint8) {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("d%d", i)
		}
		results, err := parseBulkResponse(data, ids)

		var shape struct {
			Items []json.RawMessage `json:"items"`
		}
		if json.Unmarshal(data, &shape) == nil && len(shape.Items) != len(ids) && err == nil {
			t.Fatalf("%d items for %d documents accepted", len(shape.Items), len(ids))
		}
		if err != nil {
			if !errors.Is(err, ErrBadResponse) {
				t.Fatalf("error %v does not wrap ErrBadResponse", err)
			}
			return
		}
		if len(results) != len(ids) {
			t.Fatalf("%d results for %d documents", len(results), len(ids))
		}
		for i, r := range results {
			if r.Status < 100 || r.Status > 599 {
				t.Fatalf("result %d has status %d", i, r.Status)
			}
			if len(r.Reason) > maxErrorBody {
				t.Fatalf("result %d reason is %d bytes", i, len(r.Reason))
			}
		}
	})
}

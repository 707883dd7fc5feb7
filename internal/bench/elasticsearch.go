package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// esNode is the Elasticsearch (or OpenSearch) node of an Elasticsearch
// bench, spoken to over plain HTTP: the baseline must not share pipetel's
// client code.
type esNode struct {
	url    string
	prefix string // pipetel's index prefix for this run
	client *http.Client
}

// pipetelIndexes are the indexes pipetel writes in this run; bulkIndexes
// the baseline's copies of them (same names plus -bulk, so the same index
// template gives them the same mappings).
func (n esNode) pipetelIndexes() string {
	return n.prefix + "-events-*," + n.prefix + "-network-*,-" + n.prefix + "-*-bulk"
}
func (n esNode) bulkIndexes() string { return n.prefix + "-*-bulk" }

func (n esNode) do(ctx context.Context, method, path string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, n.url+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if strings.HasSuffix(path, "_bulk") {
		req.Header.Set("Content-Type", "application/x-ndjson")
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return fmt.Errorf("cannot %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("cannot read the answer to %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: status %d: %.300s", method, path, resp.StatusCode, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// count refreshes indexes and counts their documents.
func (n esNode) count(ctx context.Context, indexes string) (int64, error) {
	if err := n.do(ctx, http.MethodPost, "/"+indexes+"/_refresh?allow_no_indices=true&ignore_unavailable=true", nil, nil); err != nil {
		return 0, err
	}
	var c struct {
		Count int64 `json:"count"`
	}
	err := n.do(ctx, http.MethodGet, "/"+indexes+"/_count?allow_no_indices=true&ignore_unavailable=true", nil, &c)
	return c.Count, err
}

// waitCount waits until indexes hold want documents.
func (n esNode) waitCount(ctx context.Context, indexes string, want int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		got, err := n.count(ctx, indexes)
		if err == nil && got >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %s holds %d of %d documents after %v (%v)", ErrIncomplete, indexes, got, want, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

type esDoc struct {
	Index  string          `json:"_index"`
	ID     string          `json:"_id"`
	Source json.RawMessage `json:"_source"`
}

// documents reads back every document pipetel indexed in this run.
func (n esNode) documents(ctx context.Context) ([]esDoc, error) {
	var docs []esDoc
	var page struct {
		ScrollID string `json:"_scroll_id"`
		Hits     struct {
			Hits []esDoc `json:"hits"`
		} `json:"hits"`
	}
	if err := n.do(ctx, http.MethodPost, "/"+n.pipetelIndexes()+"/_search?scroll=2m&size=5000", strings.NewReader(`{"sort":["_doc"]}`), &page); err != nil {
		return nil, err
	}
	for len(page.Hits.Hits) > 0 {
		docs = append(docs, page.Hits.Hits...)
		id := page.ScrollID
		page.Hits.Hits = nil
		body, _ := json.Marshal(map[string]string{"scroll": "2m", "scroll_id": id})
		if err := n.do(ctx, http.MethodPost, "/_search/scroll", bytes.NewReader(body), &page); err != nil {
			return nil, err
		}
	}
	return docs, nil
}

// bulkBaseline indexes docs again, into the -bulk copies of their indexes,
// with plain sequential _bulk requests of 5 000 documents, and returns the
// time from the first request until every copy is searchable.
func (n esNode) bulkBaseline(ctx context.Context, docs []esDoc) (time.Duration, error) {
	started := time.Now()
	var body bytes.Buffer
	for from := 0; from < len(docs); from += 5000 {
		body.Reset()
		w := bufio.NewWriter(&body)
		for _, d := range docs[from:min(from+5000, len(docs))] {
			meta, _ := json.Marshal(map[string]map[string]string{"index": {"_index": d.Index + "-bulk", "_id": d.ID}})
			w.Write(meta)
			w.WriteByte('\n')
			w.Write(d.Source)
			w.WriteByte('\n')
		}
		w.Flush()
		var resp struct {
			Errors bool `json:"errors"`
		}
		if err := n.do(ctx, http.MethodPost, "/_bulk", &body, &resp); err != nil {
			return 0, err
		}
		if resp.Errors {
			return 0, fmt.Errorf("the baseline's _bulk request at document %d reported errors", from)
		}
	}
	if err := n.waitCount(ctx, n.bulkIndexes(), int64(len(docs)), 5*time.Minute); err != nil {
		return 0, err
	}
	return time.Since(started), nil
}

// deleteIndexes removes this run's indexes, the baseline's included.
func (n esNode) deleteIndexes(ctx context.Context) error {
	return n.do(ctx, http.MethodDelete, "/"+n.prefix+"-*?allow_no_indices=true&ignore_unavailable=true", nil, nil)
}

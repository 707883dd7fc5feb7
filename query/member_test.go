package query

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestMemberAnswersAreBounded: another instance's redirect is not followed
// and an answer over maxMemberBody is refused, not read into memory.
func TestMemberAnswersAreBounded(t *testing.T) {
	var elsewhere atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	defer target.Close()
	member := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, target.URL+"/latest/meta-data/", http.StatusFound)
		case "/huge":
			chunk := []byte(strings.Repeat("x", 1<<20))
			for range maxMemberBody/len(chunk) + 2 {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}
	}))
	defer member.Close()
	c, err := NewCluster(ClusterConfig{Brokers: []string{"127.0.0.1:1"}, GroupID: "g", AdvertiseHTTP: "127.0.0.1:9464"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addr := strings.TrimPrefix(member.URL, "http://")
	var out map[string]any
	err = c.getJSON(context.Background(), addr, "/redirect", &out)
	var me *MemberError
	if !errors.As(err, &me) || me.Status != http.StatusFound || elsewhere.Load() != 0 {
		t.Errorf("redirect: %v (status %v), target hit %d times; want the 302 itself, target never asked", err, me, elsewhere.Load())
	}
	err = c.getJSON(context.Background(), addr, "/huge", &out)
	if !errors.Is(err, errBodyTooLarge) {
		t.Errorf("huge answer: %v, want errBodyTooLarge", err)
	}
}

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/pipetel/pipetel/client"
	"github.com/pipetel/pipetel/internal/testbroker"
	"github.com/pipetel/pipetel/internal/testclock"
	"github.com/pipetel/pipetel/schemas"
)

// TestAuthToken: with http.auth_token the API and /metrics answer 401
// without the bearer token and 200 with it, the probes need none, and the
// cluster view still gathers from every instance (forwarded requests carry
// the token).
func TestAuthToken(t *testing.T) {
	const token = "s3cret-token"
	b := testbroker.Start(t)
	tt := newTestTopics(t, b, 4)
	var insts []*runningApp
	for range 2 {
		cfg := testConfig(b, tt, t.TempDir())
		cfg.HTTP.AuthToken = token
		insts = append(insts, startApp(t, cfg))
	}
	clock := &fakeClock{}
	p := newProducer(t, b, tt, clock)
	s := scenario{prefix: "auth", base: testclock.Now().Add(-time.Hour).Truncate(time.Millisecond)}
	const n = 200
	s.emit(t, p, clock, 0, n)

	status := func(path, auth string) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, "http://"+insts[0].Addr()+path, nil)
		must(t, err)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		path, auth string
		want       int
	}{
		{"/api/v1/events", "", http.StatusUnauthorized},
		{"/api/v1/events", "Bearer wrong", http.StatusUnauthorized},
		{"/metrics", "", http.StatusUnauthorized},
		{"/metrics", "Bearer " + token, http.StatusOK},
		{"/healthz", "", http.StatusOK},
		{"/api/v1/retries", "Bearer " + token, http.StatusOK},
	} {
		if got := status(c.path, c.auth); got != c.want {
			t.Errorf("GET %s with %q: %d, want %d", c.path, c.auth, got, c.want)
		}
	}
	c := client.New("http://"+insts[0].Addr(), client.WithToken(token))
	waitFor(t, 60*time.Second, "every task listed through one instance", func() (bool, string) {
		var got int
		for _, err := range c.Events(context.Background(), client.Filter{Status: schemas.StatusCompleted}) {
			if err != nil {
				return false, err.Error()
			}
			got++
		}
		want := s.expect(n).completed
		return got == want, fmt.Sprintf("%d of %d completed events", got, want)
	})
	var e *client.Error
	if _, err := client.New("http://"+insts[0].Addr()).Get(context.Background(), s.taskID(1)); !errors.As(err, &e) || e.Status != http.StatusUnauthorized {
		t.Errorf("client without the token: %v, want a 401 *client.Error", err)
	}
}

package sinks

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestHTTPErrorClassification(t *testing.T) {
	f := func(status int, netErr error, wantRetry, wantPermanent, wantAuth bool) {
		t.Helper()
		e := newHTTPError("elasticsearch", status, []byte("body"))
		e.Err = netErr
		var err error = e
		if got := e.Retryable(); got != wantRetry {
			t.Errorf("status %d: Retryable() = %v, want %v", status, got, wantRetry)
		}
		if got := errors.Is(err, ErrPermanent); got != wantPermanent {
			t.Errorf("status %d: Is(ErrPermanent) = %v, want %v", status, got, wantPermanent)
		}
		if got := errors.Is(err, ErrAuth); got != wantAuth {
			t.Errorf("status %d: Is(ErrAuth) = %v, want %v", status, got, wantAuth)
		}
	}
	f(0, io.ErrUnexpectedEOF, true, false, false)
	f(400, nil, false, true, false)
	f(401, nil, false, true, true)
	f(403, nil, false, true, true)
	f(404, nil, false, true, false)
	f(408, nil, true, false, false)
	f(413, nil, false, true, false)
	f(429, nil, true, false, false)
	f(500, nil, true, false, false)
	f(502, nil, true, false, false)
	f(503, nil, true, false, false)

	var err error = &HTTPError{Publisher: "x", Err: io.ErrUnexpectedEOF}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("network HTTPError does not unwrap to its cause")
	}
}

func TestHTTPErrorMessage(t *testing.T) {
	f := func(e *HTTPError, want string) {
		t.Helper()
		if got := e.Error(); got != want {
			t.Errorf("Error() = %q, want %q", got, want)
		}
	}
	f(newHTTPError("grafanacloud", 401, []byte("invalid credentials\n")),
		"grafanacloud: authentication failed: HTTP 401 Unauthorized: invalid credentials")
	f(newHTTPError("elasticsearch", 503, nil), "elasticsearch: HTTP 503 Service Unavailable")
	f(&HTTPError{Publisher: "elasticsearch", Err: io.EOF}, "elasticsearch: cannot reach the backend: EOF")

	long := newHTTPError("x", 500, []byte(strings.Repeat("a", 2000)))
	if len(long.Body) != maxErrorBody {
		t.Errorf("body kept %d bytes, want %d", len(long.Body), maxErrorBody)
	}
}

func TestItemErrors(t *testing.T) {
	rej := &RejectedError{Publisher: "elasticsearch", Items: []Rejected{
		{ID: "a", Status: 400, Reason: "mapper_parsing_exception: bad"},
		{ID: "b", Status: 400}, {ID: "c"}, {ID: "d"}, {ID: "e"},
	}}
	retry := &ItemError{Publisher: "elasticsearch", Items: []Rejected{{ID: "f", Status: 429}}}
	err := errors.Join(rej, retry)

	var gotRej *RejectedError
	var gotRetry *ItemError
	if !errors.As(err, &gotRej) || len(gotRej.Items) != 5 {
		t.Fatalf("errors.As RejectedError: %v", gotRej)
	}
	if !errors.As(err, &gotRetry) || gotRetry.Items[0].ID != "f" {
		t.Fatalf("errors.As ItemError: %v", gotRetry)
	}
	if !errors.Is(rej, ErrPermanent) || errors.Is(retry, ErrPermanent) {
		t.Errorf("ErrPermanent: RejectedError %v, ItemError %v; want true, false",
			errors.Is(rej, ErrPermanent), errors.Is(retry, ErrPermanent))
	}
	want := `elasticsearch: 5 items rejected for good: "a" (400): mapper_parsing_exception: bad; "b" (400); "c"; and 2 more`
	if got := rej.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got, want := retry.Error(), `elasticsearch: 1 items refused for now: "f" (429)`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

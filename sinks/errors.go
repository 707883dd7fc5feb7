package sinks

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// How a caller (the outbox dispatcher) reads a publisher's error:
//
//   - nil: every item of the batch was accepted.
//   - errors.As(err, &*RejectedError): dead-letter exactly its Items; the
//     backend refused them for good.
//   - errors.As(err, &*ItemError): send exactly its Items again later; the
//     backend refused them for now (429, 5xx).
//   - anything else concerns the whole batch, less any items named by a
//     RejectedError: errors.Is(err, ErrPermanent) means that sending the same
//     request again cannot succeed (a 4xx status, see HTTPError); otherwise
//     (network error, 429, 5xx, ErrBadResponse, context ended) send it again
//     later.
//
// A batch can fail in several ways at once; the error then joins them
// (errors.Join), so check for each of the above.

// ErrPermanent is wrapped by errors for items or requests that the backend
// rejected for good (a mapping error, a malformed document, a 4xx status other
// than 408 and 429): sending them again cannot help, so the caller dead-letters
// them. *RejectedError always wraps it; *HTTPError wraps it when its status is
// not retryable.
var ErrPermanent = errors.New("rejected for good")

// ErrAuth is wrapped by an *HTTPError whose status is 401 or 403: the backend
// refused the credentials. It is permanent for the request, but the fault lies
// in the configuration, not in the items; a caller may prefer to stop and alert
// rather than dead-letter.
var ErrAuth = errors.New("authentication failed")

// ErrBadResponse is wrapped when a backend's response cannot be understood
// (not JSON, no items, not one item per document sent). Whether the batch was
// stored is unknown, so the error is retryable: every publisher with ids
// (Elasticsearch) makes a second delivery overwrite the first.
var ErrBadResponse = errors.New("malformed response")

// maxErrorBody is how much of a response body an HTTPError keeps.
const maxErrorBody = 512

// Rejected is one item that the backend refused, for good in a RejectedError,
// for now in an ItemError.
type Rejected struct {
	// ID is the item's id in the backend: the task_id of an event,
	// task_id + "/" + op_id of a network operation.
	ID string
	// Status is the item's HTTP status, 0 when the publisher refused the item
	// before sending it (for example a metric with neither start nor end time).
	Status int
	// Reason is the backend's explanation, such as a mapping error.
	Reason string
}

// RejectedError reports the items of a batch that the backend rejected for
// good. Items not listed were accepted, unless the error also joins an
// *ItemError or a whole-batch error. It wraps ErrPermanent.
type RejectedError struct {
	Publisher string
	Items     []Rejected
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("%s: %d items rejected for good: %s", e.Publisher, len(e.Items), summarize(e.Items))
}

// Unwrap returns ErrPermanent.
func (e *RejectedError) Unwrap() error { return ErrPermanent }

// Retryable reports false: the listed items cannot succeed as they are.
func (e *RejectedError) Retryable() bool { return false }

// ItemError reports the items of a batch that still failed with a transient
// status (429, 5xx) after the publisher's own retries. Items not listed were
// accepted, unless the error also joins a *RejectedError.
type ItemError struct {
	Publisher string
	Items     []Rejected
}

func (e *ItemError) Error() string {
	return fmt.Sprintf("%s: %d items refused for now: %s", e.Publisher, len(e.Items), summarize(e.Items))
}

// Retryable reports true: the listed items may be sent again.
func (e *ItemError) Retryable() bool { return true }

// summarize names the first few items so that an error message stays short.
func summarize(items []Rejected) string {
	const show = 3
	var b strings.Builder
	for i, it := range items {
		if i == show {
			fmt.Fprintf(&b, "; and %d more", len(items)-show)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%q", it.ID)
		if it.Status != 0 {
			fmt.Fprintf(&b, " (%d)", it.Status)
		}
		if it.Reason != "" {
			b.WriteString(": ")
			b.WriteString(it.Reason)
		}
	}
	return b.String()
}

// HTTPError reports a request that failed as a whole: a network error
// (StatusCode 0, Err set) or a response status outside 2xx.
type HTTPError struct {
	Publisher string
	// StatusCode is the response status, 0 when no response arrived.
	StatusCode int
	// Body is the start of the response body (at most 512 bytes); backends do
	// not echo credentials, so it is safe to log.
	Body string
	// Err is the network error when StatusCode is 0.
	Err error
}

func newHTTPError(publisher string, status int, body []byte) *HTTPError {
	s := strings.ToValidUTF8(string(body[:min(len(body), maxErrorBody)]), "")
	return &HTTPError{Publisher: publisher, StatusCode: status, Body: strings.TrimSpace(s)}
}

func (e *HTTPError) Error() string {
	if e.StatusCode == 0 {
		return fmt.Sprintf("%s: cannot reach the backend: %v", e.Publisher, e.Err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: ", e.Publisher)
	if e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden {
		b.WriteString("authentication failed: ")
	}
	fmt.Fprintf(&b, "HTTP %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.Body != "" {
		b.WriteString(": ")
		b.WriteString(e.Body)
	}
	return b.String()
}

// Retryable reports whether sending the same request again may succeed: true
// for network errors and for statuses 408, 429 and 5xx.
func (e *HTTPError) Retryable() bool {
	return retryableStatus(e.StatusCode)
}

// Unwrap returns the network error, or ErrPermanent (and ErrAuth for 401 and
// 403) when the status is not retryable.
func (e *HTTPError) Unwrap() []error {
	var errs []error
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	if !e.Retryable() {
		errs = append(errs, ErrPermanent)
	}
	if e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden {
		errs = append(errs, ErrAuth)
	}
	return errs
}

// retryableStatus reports whether a request that got status (0: no response)
// may succeed when sent again.
func retryableStatus(status int) bool {
	return status == 0 || status == http.StatusRequestTimeout ||
		status == http.StatusTooManyRequests || status >= 500
}

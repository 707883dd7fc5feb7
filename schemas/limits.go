package schemas

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Limits on the strings of a record, in bytes of UTF-8. They keep one
// record from making a state key Badger refuses (keys are bounded at 65 000
// bytes), or a finished metric too big to store, publish or dead-letter.
const (
	// MaxIDBytes bounds task_id, op_id, event_name, operation, host and
	// pipeline_id: longer ones are rejected with CodeTooLong.
	MaxIDBytes = 512
	// MaxErrorBytes bounds error: a longer one is cut to this length by
	// TruncateError, not rejected, so that a failure is still recorded.
	MaxErrorBytes = 8 << 10
)

// TruncateError returns s when it fits MaxErrorBytes, otherwise its first
// bytes, cut on a rune boundary, and a marker that gives the original
// length, together exactly MaxErrorBytes or less:
//
//	"... [truncated: 12345 bytes]"
func TruncateError(s string) string {
	if len(s) <= MaxErrorBytes {
		return s
	}
	marker := " [truncated: " + strconv.Itoa(len(s)) + " bytes]"
	n := MaxErrorBytes - len(marker)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + marker
}

// KeyError is the error of a record whose Kafka key is not its task_id.
func KeyError(key []byte, taskID string) *DecodeError {
	return &DecodeError{Code: CodeKeyMismatch, Field: "task_id", Value: renderString(taskID),
		Expected: "the record's key, " + renderString(string(key))}
}

// tooLong is the error of an identifier of n bytes, over MaxIDBytes; s is
// the identifier or a prefix of it, for the error's rendering.
func tooLong(f field, s string, n int) *DecodeError {
	return &DecodeError{Code: CodeTooLong, Field: f.String(), Value: renderString(s),
		Expected: fmt.Sprintf("a string of at most %d bytes (this one has %d)", MaxIDBytes, n)}
}

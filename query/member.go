package query

import (
	"fmt"
	"io"
)

// maxMemberBody bounds what this instance reads from another one: far above
// a page of 1000 metrics, far below what would hurt.
const maxMemberBody = 16 << 20

// errBodyTooLarge is returned when a member's answer passes maxMemberBody.
var errBodyTooLarge = fmt.Errorf("answer longer than %d bytes", maxMemberBody)

// readMemberBody reads an answer of another instance, at most maxMemberBody.
func readMemberBody(r io.Reader) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r, maxMemberBody+1))
	if err == nil && len(body) > maxMemberBody {
		err = errBodyTooLarge
	}
	return body, err
}

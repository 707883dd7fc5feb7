package schemas_test

import (
	"testing"
	"time"

	"github.com/pipetel/pipetel/schemas"
)

func TestAPIPaths(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{schemas.EventPath("t-1"), "/api/v1/events/t-1"},
		{schemas.EventPath("a/b c?"), "/api/v1/events/a%2Fb%20c%3F"},
		{schemas.NetworkOpPath("t-1", ""), "/api/v1/network/t-1?op_id="},
		{schemas.NetworkOpPath("a b", "q&1"), "/api/v1/network/a%20b?op_id=q%261"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"2": 2 * time.Second, "0.25": 250 * time.Millisecond, "1.5s": 1500 * time.Millisecond, "250ms": 250 * time.Millisecond} {
		if got, err := schemas.ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "NaN", "1e300", "-1e300"} {
		if _, err := schemas.ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q): no error", in)
		}
	}
}

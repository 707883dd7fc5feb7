package membership_test

import (
	"testing"

	"github.com/pipetel/pipetel/internal/membership"
)

func TestCheck(t *testing.T) {
	f := func(addr string, ok bool) {
		t.Helper()
		if err := membership.Check(addr); (err == nil) != ok {
			t.Errorf("membership.Check(%q) = %v, want ok %v", addr, err, ok)
		}
	}
	f("127.0.0.1:9464", true)
	f("pipetel-0.pipetel.monitoring.svc.cluster.local:9464", true)
	f("[::1]:9464", true)
	f("10.0.0.7:1", true)
	f("169.254.169.254/latest/meta-data/?x=:1", false)
	f("user@host:9464", false)
	f("host#x:9464", false)
	f("h ost:9464", false)
	f("0.0.0.0:9464", false)
	f("[::]:9464", false)
	f(":9464", false)
	f("host", false)
	f("host:0", false)
	f("host:65536", false)
	f("host:+1", false)
	f("host:09464", false)
}

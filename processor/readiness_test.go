package processor

import "testing"

func TestReadiness(t *testing.T) {
	p := &Processor{ready: make(chan struct{})}
	f := func(want string) {
		t.Helper()
		err := p.Readiness()
		if want == "" && err != nil || want != "" && (err == nil || err.Error() != want) {
			t.Errorf("Readiness() = %v, want %q", err, want)
		}
	}
	f("not yet a member of the consumer group")
	close(p.ready)
	p.restoring.Add(2)
	f("restoring 2 partitions from the changelog")
	p.restoring.Add(-2)
	f("")
}

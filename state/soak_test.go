package state_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/state"
)

// diskUsage is the disk the files under dir take (allocated blocks, not
// apparent sizes: Badger preallocates and mmaps its files).
func diskUsage(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSoakDiskStaysFlat: under steady load with a short retention (every
// round finishes new metrics and sweeps those past the retention), the
// state directory stops growing once the live data is steady.
func TestSoakDiskStaysFlat(t *testing.T) {
	if os.Getenv("PIPETEL_TEST_HEAVY") == "" {
		t.Skip("soak test: set PIPETEL_TEST_HEAVY=1 (make test does, without -race)")
	}
	dir := t.TempDir()
	s := open(t, state.Options{Dir: dir}, ev0)
	ctx, cancel := context.WithCancel(context.Background())
	gcDone := make(chan error, 1)
	go func() { gcDone <- s.RunGC(ctx, 50*time.Millisecond) }()
	defer func() {
		cancel()
		if err := <-gcDone; err != nil {
			t.Errorf("RunGC: %v", err)
		}
	}()
	const rounds, perRound = 24, 8000
	sizes := make([]int64, rounds)
	for r := range rounds {
		for b := 0; b < perRound; b += 1000 {
			var ms []schemas.EventMetric
			for i := b; i < b+1000; i++ {
				sec := float64(r*600) + float64(i)/100
				ms = append(ms, evMetric(fmt.Sprintf("task-%02d-%05d", r, i), sec, sec+1, "", i%4))
			}
			finish(t, s, ev0, ms...)
		}
		// Keep about two rounds: retention counts back from the newest end.
		if _, err := s.ExpireFinished(ctx, ev0, at(float64(r*600)-900)); err != nil {
			t.Fatal(err)
		}
		sizes[r] = diskUsage(t, dir)
	}
	t.Logf("disk usage by round (MiB): %v", mib(sizes))
	// Badger compacts in steps, so usage is a saw; its peaks must not rise.
	// Without the sweep it would grow by one round's data every round.
	early := slices.Max(sizes[4 : rounds/2])
	late := slices.Max(sizes[rounds/2:])
	if late > early+early/2 {
		t.Fatalf("state directory peaked at %d bytes in the first half and %d in the second, over %d rounds of steady load", early, late, rounds)
	}
	if n, err := s.CountFinished(state.Events); err != nil || n > 3*perRound {
		t.Fatalf("%d finished metrics kept (err %v), want at most three rounds' %d", n, err, 3*perRound)
	}
}

func mib(ns []int64) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = fmt.Sprintf("%.1f", float64(n)/(1<<20))
	}
	return out
}

package state

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestValuesStayOutOfTheValueLog: large values (a pending task with an
// 8 KiB error, rewritten by every batch like the aggregates) stay in the
// LSM tree, where compaction drops what is overwritten, instead of the
// value log, which nothing collects.
func TestValuesStayOutOfTheValueLog(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	u := Unit{Stream: Events}
	if err := s.Own(u); err != nil {
		t.Fatal(err)
	}
	const batches = 200
	for i := range batches {
		err := s.Update(context.Background(), u, func(b *Batch) error {
			pe := PendingEvent{HasEnd: true, EndTime: time.Unix(int64(i), 0), Error: strings.Repeat("x", 8<<10), Deadline: int64(i + 1)}
			return b.PutPendingEvent("big", pe, i == 0)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "*.vlog"))
	var used int64
	for _, p := range logs {
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		used += info.Sys().(*syscall.Stat_t).Blocks * 512
	}
	if used > 64<<10 {
		t.Fatalf("value log holds %d bytes on disk after %d rewrites of an 8 KiB value, want under 64 KiB", used, batches)
	}
}

package state

import "testing"

// FuzzParseMark: the mark is read from disk; any bytes parse or fail cleanly,
// and a parsed mark encodes back to the same bytes.
func FuzzParseMark(f *testing.F) {
	f.Add(Mark{ChangelogOffset: 41, Applied: 1000, HasApplied: true}.bytes())
	f.Add(Mark{ChangelogOffset: -1}.bytes())
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseMark(b)
		if err != nil {
			return
		}
		if b[16] > 1 {
			return // any non-zero flag byte reads as no applied offset
		}
		if got := m.bytes(); string(got) != string(b) {
			t.Fatalf("round trip %x -> %x", b, got)
		}
	})
}

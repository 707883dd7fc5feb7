package testclock

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const module = "github.com/pipetel/pipetel"

// retentionPackage is where finished metrics are swept by age: a test whose
// package reaches it builds record times from Now, never from a date.
const retentionPackage = module + "/state"

// TestNoCalendarDatesInReach fails when a test file of a package that
// reaches the state store builds a time from a literal calendar date: once
// the calendar passes that date by more than the retention, such a test
// sees its metrics swept (issue 8). Packages that never reach the store
// (the record codec, the SDK) keep fixed dates for their encoding vectors.
func TestNoCalendarDatesInReach(t *testing.T) {
	root := moduleRoot(t)
	imports := map[string][]string{} // package path → module packages it imports (tests included)
	tests := map[string][]string{}   // package path → its _test.go files
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "clients") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		pkg := module
		if rel != "." {
			pkg += "/" + filepath.ToSlash(rel)
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, im := range f.Imports {
			if p, _ := strconv.Unquote(im.Path.Value); strings.HasPrefix(p, module) {
				imports[pkg] = append(imports[pkg], p)
			}
		}
		if strings.HasSuffix(path, "_test.go") {
			tests[pkg] = append(tests[pkg], path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	reaches := func(pkg string) bool {
		seen := map[string]bool{}
		var walk func(string) bool
		walk = func(p string) bool {
			if p == retentionPackage {
				return true
			}
			if seen[p] {
				return false
			}
			seen[p] = true
			for _, q := range imports[p] {
				if walk(q) {
					return true
				}
			}
			return false
		}
		return walk(pkg)
	}
	checked := 0
	for pkg, files := range tests {
		if !reaches(pkg) {
			continue
		}
		for _, path := range files {
			checked++
			for _, pos := range calendarDates(t, path) {
				rel, _ := filepath.Rel(root, path)
				t.Errorf("%s:%d: time.Date with a literal year in a test of %s, which reaches the retention of %s; build record times from testclock.Now()",
					rel, pos.Line, pkg, retentionPackage)
			}
		}
	}
	if checked == 0 {
		t.Fatalf("no test file of a package reaching %s found under %s: the check checks nothing", retentionPackage, root)
	}
}

func TestCalendarDatesFindsLiteralYears(t *testing.T) {
	f := func(src string, want int) {
		t.Helper()
		path := filepath.Join(t.TempDir(), "x_test.go")
		if err := os.WriteFile(path, []byte("package x\nimport \"time\"\n"+src), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := len(calendarDates(t, path)); got != want {
			t.Errorf("%q: %d calendar dates, want %d", src, got, want)
		}
	}
	// Source text for the detector, written to a file and parsed, never
	// run: these dates are not times of any test.
	f(`var a = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)`, 1)
	f(`var a, b = time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC), time.Date(1999, 1, 1, 0, 0, 0, 0, time.Local)`, 2)
	f(`func y() int { return 2026 }; var a = time.Date(y(), 1, 1, 0, 0, 0, 0, time.UTC)`, 0)
	f(`var a = time.Now().Add(-time.Hour)`, 0)
}

// calendarDates finds time.Date calls whose year is an integer literal.
func calendarDates(t *testing.T, path string) []token.Position {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var found []token.Position
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) == 0 {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || sel.Sel.Name != "Date" {
			return true
		}
		if x, ok := sel.X.(*ast.Ident); !ok || x.Name != "time" {
			return true
		}
		if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.INT {
			found = append(found, fset.Position(call.Pos()))
		}
		return true
	})
	return found
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the working directory")
		}
		dir = parent
	}
}

func TestOffset(t *testing.T) {
	// Now follows the wall clock by exactly Offset (within the time the
	// two reads take).
	before := time.Now()
	got := Now()
	after := time.Now()
	if got.Before(before.Add(Offset())) || got.After(after.Add(Offset())) {
		t.Errorf("Now() = %v, want between %v and %v", got, before.Add(Offset()), after.Add(Offset()))
	}
}

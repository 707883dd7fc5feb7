package app

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
)

// envRef is ${NAME} or ${NAME:-default} in a configuration file.
var envRef = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// expandEnv replaces ${NAME} with the environment variable NAME and
// ${NAME:-default} with it or, when it is unset or empty, the default; $$
// is a literal $. Only the braced form is read, so a $ in a password stays
// as it is. A ${NAME} that is not set is an error naming it and its line:
// an empty broker list or password would otherwise fail later, less
// clearly.
func expandEnv(data []byte) ([]byte, error) {
	var out []byte
	var missing error
	for i, line := range bytes.SplitAfter(data, []byte("\n")) {
		// A comment (from a # at the start or after a space) is left as it is.
		code, comment := line, []byte(nil)
		if c := commentAt(line); c >= 0 {
			code, comment = line[:c], line[c:]
		}
		exp, err := expandLine(code, i+1)
		if err != nil && missing == nil {
			missing = err
		}
		out = append(append(out, exp...), comment...)
	}
	return out, missing
}

// commentAt is where a YAML comment starts in line, -1 for none: a # at
// the start or after a blank, outside quotes.
func commentAt(line []byte) int {
	var quote byte
	for i, c := range line {
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t'):
			return i
		}
	}
	return -1
}

func expandLine(data []byte, line int) ([]byte, error) {
	var missing error
	out := envRef.ReplaceAllFunc(data, func(m []byte) []byte {
		if string(m) == "$$" {
			return []byte("$")
		}
		sub := envRef.FindSubmatch(m)
		name := string(sub[1])
		if v := os.Getenv(name); v != "" {
			return []byte(v)
		}
		if len(sub[2]) > 0 {
			return sub[3]
		}
		if missing == nil {
			missing = fmt.Errorf("line %d: ${%s} is not set in the environment (use ${%s:-default} for a default)", line, name, name)
		}
		return nil
	})
	return out, missing
}

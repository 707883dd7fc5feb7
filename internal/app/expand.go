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
			line := 1 + bytes.Count(data[:bytes.Index(data, m)], []byte("\n"))
			missing = fmt.Errorf("line %d: ${%s} is not set in the environment (use ${%s:-default} for a default)", line, name, name)
		}
		return nil
	})
	return out, missing
}

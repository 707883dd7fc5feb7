package schemas

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"testing"
)

// jsProp is the subset of JSON Schema keywords the contract's files use for a
// property.
type jsProp struct {
	Ref       string          `json:"$ref"`
	Type      string          `json:"type"`
	Const     *string         `json:"const"`
	Enum      []string        `json:"enum"`
	MinLength *int            `json:"minLength"`
	Minimum   *json.Number    `json:"minimum"`
	Maximum   *json.Number    `json:"maximum"`
	Format    string          `json:"format"`
	Pattern   string          `json:"pattern"`
	Default   json.RawMessage `json:"default"`
}

type jsBranch struct {
	Type                 string            `json:"type"`
	Properties           map[string]jsProp `json:"properties"`
	Required             []string          `json:"required"`
	AdditionalProperties *bool             `json:"additionalProperties"`
}

type jsDoc struct {
	Schema     string            `json:"$schema"`
	Type       string            `json:"type"`
	Required   []string          `json:"required"`
	Properties map[string]jsProp `json:"properties"`
	OneOf      []jsBranch        `json:"oneOf"`
	Defs       map[string]jsProp `json:"$defs"`
}

func loadSchema(t *testing.T, schema string) jsDoc {
	t.Helper()
	b, ok := JSONSchema(schema)
	if !ok {
		t.Fatalf("JSONSchema(%q): not found", schema)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var doc jsDoc
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("cannot parse JSON Schema of %q: %v", schema, err)
	}
	return doc
}

// classify maps a JSON Schema property to the decoder's value type.
func classify(t *testing.T, doc jsDoc, name string, p jsProp) valueType {
	t.Helper()
	if p.Ref != "" {
		const prefix = "#/$defs/"
		def, ok := doc.Defs[p.Ref[len(prefix):]]
		if p.Ref[:len(prefix)] != prefix || !ok {
			t.Fatalf("property %q: unresolvable $ref %q", name, p.Ref)
		}
		def.Default = p.Default
		p = def
	}
	num := func(n *json.Number) int64 {
		if n == nil {
			return -1
		}
		v, err := strconv.ParseInt(string(*n), 10, 64)
		if err != nil {
			t.Fatalf("property %q: bound %s: %v", name, *n, err)
		}
		return v
	}
	switch {
	case p.Const != nil:
		return tConst
	case p.Type == "string" && p.Format == "date-time":
		if p.Pattern != timePattern.String() {
			t.Fatalf("property %q: pattern %q, want %q", name, p.Pattern, timePattern)
		}
		return tTime
	case p.Type == "string" && p.MinLength != nil && *p.MinLength == 1:
		return tNonEmptyString
	case p.Type == "string" && p.MinLength == nil:
		return tString
	case p.Type == "integer" && num(p.Minimum) == 0 && num(p.Maximum) == math.MaxInt64:
		return tNonNegInt
	case p.Type == "integer" && num(p.Minimum) == 1 && num(p.Maximum) == 65535:
		return tPort
	}
	t.Fatalf("property %q: no decoder type matches %+v", name, p)
	return 0
}

// TestJSONSchemaMatchesDecoder keeps the JSON Schema files and the decoder's
// field tables from drifting apart: per kind the same allowed and required
// fields, the same value types and the same defaults.
func TestJSONSchemaMatchesDecoder(t *testing.T) {
	minimal := map[*shape]string{
		networkStart: `{"schema":"pipetel.network/v1","kind":"start","task_id":"t","host":"h","port":1,"time":"2024-01-01T00:00:00Z"}`,
		networkEnd:   `{"schema":"pipetel.network/v1","kind":"end","task_id":"t","time":"2024-01-01T00:00:00Z"}`,
	}
	for _, schema := range []string{EventSchema, NetworkSchema} {
		doc := loadSchema(t, schema)
		if doc.Schema != "https://json-schema.org/draft/2020-12/schema" || doc.Type != "object" ||
			!reflect.DeepEqual(doc.Required, []string{"schema", "kind"}) {
			t.Fatalf("%s: root: $schema %q type %q required %q", schema, doc.Schema, doc.Type, doc.Required)
		}
		if c := doc.Properties["schema"].Const; c == nil || *c != schema {
			t.Fatalf("%s: root schema const = %v", schema, c)
		}
		var kinds []string
		for _, sh := range shapes {
			if sh.schema == schema {
				kinds = append(kinds, string(sh.kind))
			}
		}
		if got := doc.Properties["kind"].Enum; !reflect.DeepEqual(got, kinds) {
			t.Fatalf("%s: kind enum %q, decoder kinds %q", schema, got, kinds)
		}
		if len(doc.OneOf) != len(kinds) {
			t.Fatalf("%s: %d oneOf branches, decoder has %d kinds", schema, len(doc.OneOf), len(kinds))
		}
		for i, br := range doc.OneOf {
			kc := br.Properties["kind"].Const
			if kc == nil || *kc != kinds[i] {
				t.Fatalf("%s: branch %d: kind const %v, want %q", schema, i, kc, kinds[i])
			}
			sh := shapeFor(schema, Kind(*kc))
			if sc := br.Properties["schema"].Const; sc == nil || *sc != schema {
				t.Fatalf("%s %s: schema const %v", schema, *kc, sc)
			}
			if br.Type != "object" || br.AdditionalProperties == nil || *br.AdditionalProperties {
				t.Fatalf("%s %s: want type object and additionalProperties false", schema, *kc)
			}
			var allowed, required []string
			for _, f := range sh.fields {
				allowed = append(allowed, f.String())
				if sh.required.has(f) {
					required = append(required, f.String())
				}
			}
			var props []string
			for name := range br.Properties {
				props = append(props, name)
			}
			slices.Sort(props)
			slices.Sort(allowed)
			if !reflect.DeepEqual(props, allowed) {
				t.Fatalf("%s %s: schema properties %q, decoder allows %q", schema, *kc, props, allowed)
			}
			if !reflect.DeepEqual(br.Required, required) {
				t.Fatalf("%s %s: schema requires %q, decoder requires %q (in contract order)", schema, *kc, br.Required, required)
			}
			for name, p := range br.Properties {
				f := lookupField([]byte(name))
				if got := classify(t, doc, name, p); got != fieldTypes[f] {
					t.Fatalf("%s %s: property %q has type %d in the schema, %d in the decoder", schema, *kc, name, got, fieldTypes[f])
				}
				if p.Default == nil {
					continue
				}
				// The documented default must be what the decoder fills in.
				r, err := Decode([]byte(minimal[sh]))
				if err != nil {
					t.Fatalf("%s %s: no minimal record for checking default of %q: %v", schema, *kc, name, err)
				}
				var want any
				switch f {
				case fOpID:
					want = r.OpID
				case fOperation:
					want = r.Operation
				case fBytesSent:
					want = json.Number(strconv.FormatInt(r.BytesSent, 10))
				case fBytesReceived:
					want = json.Number(strconv.FormatInt(r.BytesReceived, 10))
				}
				var got any
				dec := json.NewDecoder(bytes.NewReader(p.Default))
				dec.UseNumber()
				if err := dec.Decode(&got); err != nil || got != want {
					t.Fatalf("%s %s: default of %q is %s in the schema, %v in the decoder", schema, *kc, name, p.Default, want)
				}
			}
		}
	}
}

func TestJSONSchemaUnknown(t *testing.T) {
	if b, ok := JSONSchema("pipetel.event/v2"); ok || b != nil {
		t.Fatalf("JSONSchema(unknown) = %q, %v", b, ok)
	}
}

// timePattern is the JSON Schema files' pattern for "time".
var timePattern = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$`)

// TestTimePatternMatchesParser checks that the schema's pattern accepts
// every time the parser accepts, and that the strings the pattern accepts
// but the parser rejects fail only on calendar and clock ranges.
func TestTimePatternMatchesParser(t *testing.T) {
	accepted := []string{
		"2024-05-01T12:00:00Z", "2024-05-01t12:00:00z", "2024-05-01T12:00:00.5Z",
		"2024-05-01T12:00:00.123456789123+05:30", "2024-02-29T23:59:59-00:00", "0000-01-01T00:00:00Z",
		"9999-12-31T23:59:59.999999999Z",
	}
	rangeOnly := []string{
		"2024-13-01T00:00:00Z", "2023-02-29T00:00:00Z", "2024-04-31T00:00:00Z", "2024-05-01T24:00:00Z",
		"2024-05-01T12:60:00Z", "2024-05-01T12:00:60Z", "2024-05-01T12:00:00+24:00", "2024-05-01T12:00:00+01:60",
		"2024-00-01T00:00:00Z", "2024-01-00T00:00:00Z",
	}
	rejected := []string{
		"2024-05-01 12:00:00Z", "2024-05-01T12:00:00", "2024-05-01T12:00:00.Z", "2024-05-01T12:00:00,5Z",
		"2024-5-01T12:00:00Z", "2024-05-01T12:00:00+0100", "2024-05-01T12:00:00+01", "24-05-01T12:00:00Z",
		"2024-05-01T12:00:00Z ", "", "2024-05-01", "+2024-05-01T12:00:00Z", "2024-05-01T12:00:00UTC",
	}
	for _, s := range accepted {
		if _, ok := parseRFC3339([]byte(s)); !ok || !timePattern.MatchString(s) {
			t.Errorf("%q: parser %v, pattern %v; want both to accept", s, ok, timePattern.MatchString(s))
		}
	}
	for _, s := range rangeOnly {
		if _, ok := parseRFC3339([]byte(s)); ok || !timePattern.MatchString(s) {
			t.Errorf("%q: parser %v, pattern %v; want parser to reject, pattern to accept", s, ok, timePattern.MatchString(s))
		}
	}
	for _, s := range rejected {
		if _, ok := parseRFC3339([]byte(s)); ok || timePattern.MatchString(s) {
			t.Errorf("%q: parser %v, pattern %v; want both to reject", s, ok, timePattern.MatchString(s))
		}
	}
}

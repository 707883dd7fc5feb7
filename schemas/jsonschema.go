package schemas

import "embed"

//go:embed *.schema.json
var schemaFiles embed.FS

// JSONSchema returns the JSON Schema (draft 2020-12) document that describes
// the records of a schema identifier (EventSchema or NetworkSchema), for
// producers not written in Go. It returns false for any other identifier.
// The caller may modify the returned bytes.
func JSONSchema(schema string) ([]byte, bool) {
	var name string
	switch schema {
	case EventSchema:
		name = "event.v1.schema.json"
	case NetworkSchema:
		name = "network.v1.schema.json"
	default:
		return nil, false
	}
	b, err := schemaFiles.ReadFile(name)
	if err != nil {
		// The files are embedded at build time; a miss is a build defect.
		panic("schemas: cannot read embedded " + name + ": " + err.Error())
	}
	return b, true
}

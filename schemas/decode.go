package schemas

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// Decoder decodes record values strictly: a value must be exactly one JSON
// object with exactly the fields of its schema and kind (see the package
// documentation), each of the right type and range. The zero Decoder is ready
// to use; a Decoder holds no state and is safe for concurrent use.
//
// The checks, in the order that decides which error a value gets:
//   - The length, before anything is parsed (CodeOversized).
//   - The syntax of the whole value: RFC 8259 JSON, one value, only
//     whitespace after it, nesting at most 100 levels (CodeMalformedJSON). A
//     valid JSON value that is not an object is CodeWrongType with no Field.
//   - Duplicate field names are rejected (CodeDuplicateField) rather than
//     resolved, since JSON parsers disagree on which one wins.
//   - "schema" (CodeMissingField, CodeWrongType, CodeUnknownSchema), then
//     "kind" (the same, with CodeUnknownKind; network records have no retry).
//   - Fields that do not belong to the schema and kind, in input order
//     (CodeUnknownField).
//   - Each field of the kind in the contract's order: CodeMissingField for an
//     absent required field; CodeWrongType for the wrong JSON type, for null
//     (never accepted, for optional fields too: an optional field is either
//     absent or of its type) and for integers written with a fraction or
//     exponent (1.0, 1e3); CodeInvalidUTF8 for strings that are not UTF-8 or
//     hold an unpaired surrogate escape; CodeEmptyValue for "" in task_id,
//     event_name, host or operation; CodeNegativeValue and CodeOutOfRange for
//     integers out of range (port 1..65535 is always CodeOutOfRange);
//     CodeBadTime for a time that is not an RFC 3339 date-time.
//
// Times: "T" and "Z" may be lower case; at least one digit must follow ".";
// digits beyond nine (nanoseconds) are truncated; leap seconds (:60) are
// rejected, since time.Time cannot hold them; the time must be within years
// 0000..9999 in UTC and not 0001-01-01T00:00:00Z, the zero time.Time that
// Encode refuses. Decoded times are in UTC.
//
// Defaults: a network start without "operation" gets DefaultOperation; a
// network record without "op_id" gets "".
type Decoder struct {
	// MaxBytes is the largest record value accepted; 0 or less means
	// DefaultMaxRecordBytes.
	MaxBytes int
}

// Decode decodes one record value with the default Decoder. Every rejection
// is a *DecodeError wrapping ErrInvalidRecord.
func Decode(b []byte) (Record, error) { return Decoder{}.Decode(b) }

// Decode decodes one record value. Every rejection is a *DecodeError
// wrapping ErrInvalidRecord; the returned Record is then the zero Record.
func (d Decoder) Decode(b []byte) (Record, error) {
	var r Record
	if err := d.decode(b, &r); err != nil {
		return Record{}, err
	}
	return r, nil
}

func (d Decoder) decode(b []byte, r *Record) *DecodeError {
	limit := d.MaxBytes
	if limit <= 0 {
		limit = DefaultMaxRecordBytes
	}
	if len(b) > limit {
		return &DecodeError{
			Code:     CodeOversized,
			Value:    strconv.Itoa(len(b)) + " bytes",
			Expected: "at most " + strconv.Itoa(limit) + " bytes",
		}
	}
	// Members stay on the stack: valid records have at most 8.
	var buf [16]member
	p := parser{b: b}
	ms, err := p.parse(buf[:0])
	if err != nil {
		return err
	}
	return p.record(r, ms)
}

// maxDepth bounds the nesting of values, which are only ever skipped (no
// field takes an object or array), so that a hostile value cannot recurse
// deeply.
const maxDepth = 100

// jsonType is the type of a scanned JSON value.
type jsonType uint8

const (
	jString jsonType = iota
	jNumber
	jBool
	jNull
	jObject
	jArray
)

// member is one name/value pair of the top-level object, kept as offsets into
// the input so that nothing is copied before the object is known to be valid.
type member struct {
	keyStart, keyEnd int // the name, without quotes
	valStart, valEnd int // the raw value
	f                field
	vt               jsonType
	keyEsc           bool // the name has escapes
	esc              bool // a string value has escapes
	bad              bool // a string value is not valid UTF-8
	isInt            bool // a number value has no fraction or exponent
}

type parser struct {
	b []byte
	i int

	// set by str and value for the last value scanned
	esc, bad, isInt bool
}

// strSafe marks bytes that need no attention inside a string.
var strSafe = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = true
	}
	t['"'] = false
	t['\\'] = false
	return t
}()

func (p *parser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// malformed reports a syntax error at p.i.
func (p *parser) malformed(expected string) *DecodeError {
	var v string
	if p.i >= len(p.b) {
		v = "end of input"
	} else {
		c := p.b[p.i]
		if c >= 0x20 && c < 0x7f {
			v = "'" + string(rune(c)) + "'"
		} else {
			v = "byte 0x" + string(hexDigits[c>>4]) + string(hexDigits[c&0xf])
		}
		v += " at offset " + strconv.Itoa(p.i)
	}
	return &DecodeError{Code: CodeMalformedJSON, Value: v, Expected: expected}
}

// parse checks the syntax of the whole input and appends the members of the
// top-level object to ms. (The members are passed in and out rather than kept
// in parser so that escape analysis leaves the caller's array on the stack.)
func (p *parser) parse(ms []member) ([]member, *DecodeError) {
	p.ws()
	if p.i >= len(p.b) {
		return nil, p.malformed(expObject)
	}
	if p.b[p.i] != '{' {
		start := p.i
		vt, err := p.value(0)
		if err != nil {
			return nil, err
		}
		end := p.i
		p.ws()
		if p.i != len(p.b) {
			return nil, p.malformed("end of input")
		}
		return nil, &DecodeError{Code: CodeWrongType, Value: p.render(start, end, vt), Expected: expObject}
	}
	p.i++
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
	} else {
		for {
			if p.i >= len(p.b) || p.b[p.i] != '"' {
				return nil, p.malformed("'\"' starting a field name")
			}
			ks := p.i + 1
			if err := p.str(); err != nil {
				return nil, err
			}
			m := member{keyStart: ks, keyEnd: p.i - 1, keyEsc: p.esc || p.bad}
			p.ws()
			if p.i >= len(p.b) || p.b[p.i] != ':' {
				return nil, p.malformed("':'")
			}
			p.i++
			p.ws()
			m.valStart = p.i
			vt, err := p.value(1)
			if err != nil {
				return nil, err
			}
			m.valEnd, m.vt, m.esc, m.bad, m.isInt = p.i, vt, p.esc, p.bad, p.isInt
			ms = append(ms, m)
			p.ws()
			if p.i < len(p.b) && p.b[p.i] == ',' {
				p.i++
				p.ws()
				continue
			}
			if p.i < len(p.b) && p.b[p.i] == '}' {
				p.i++
				break
			}
			return nil, p.malformed("',' or '}'")
		}
	}
	p.ws()
	if p.i != len(p.b) {
		return nil, p.malformed("end of input")
	}
	return ms, nil
}

// value scans one JSON value at p.i.
func (p *parser) value(depth int) (jsonType, *DecodeError) {
	if p.i >= len(p.b) {
		return 0, p.malformed("a json value")
	}
	switch c := p.b[p.i]; {
	case c == '"':
		return jString, p.str()
	case c == '-' || (c >= '0' && c <= '9'):
		return jNumber, p.number()
	case c == 't':
		return jBool, p.literal("true")
	case c == 'f':
		return jBool, p.literal("false")
	case c == 'n':
		return jNull, p.literal("null")
	case c == '{' || c == '[':
		if depth >= maxDepth {
			return 0, p.malformed("nesting of at most 100 levels")
		}
		vt := jObject
		if c == '[' {
			vt = jArray
		}
		return vt, p.container(c, depth+1)
	}
	return 0, p.malformed("a json value")
}

// container skips an object or array nested in a value.
func (p *parser) container(open byte, depth int) *DecodeError {
	close := byte('}')
	if open == '[' {
		close = ']'
	}
	p.i++
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == close {
		p.i++
		return nil
	}
	for {
		if open == '{' {
			if p.i >= len(p.b) || p.b[p.i] != '"' {
				return p.malformed("'\"' starting a field name")
			}
			if err := p.str(); err != nil {
				return err
			}
			p.ws()
			if p.i >= len(p.b) || p.b[p.i] != ':' {
				return p.malformed("':'")
			}
			p.i++
			p.ws()
		}
		if _, err := p.value(depth); err != nil {
			return err
		}
		p.ws()
		if p.i < len(p.b) && p.b[p.i] == ',' {
			p.i++
			p.ws()
			continue
		}
		if p.i < len(p.b) && p.b[p.i] == close {
			p.i++
			return nil
		}
		return p.malformed("',' or '" + string(rune(close)) + "'")
	}
}

func (p *parser) literal(lit string) *DecodeError {
	for j := 0; j < len(lit); j++ {
		if p.i >= len(p.b) || p.b[p.i] != lit[j] {
			return p.malformed("a json value")
		}
		p.i++
	}
	return nil
}

func (p *parser) digits() *DecodeError {
	if p.i >= len(p.b) || p.b[p.i] < '0' || p.b[p.i] > '9' {
		return p.malformed("a digit")
	}
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	return nil
}

func (p *parser) number() *DecodeError {
	p.isInt = true
	if p.b[p.i] == '-' {
		p.i++
	}
	if p.i < len(p.b) && p.b[p.i] == '0' {
		p.i++
	} else if err := p.digits(); err != nil {
		return err
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.isInt = false
		p.i++
		if err := p.digits(); err != nil {
			return err
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.isInt = false
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if err := p.digits(); err != nil {
			return err
		}
	}
	return nil
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// hex4 reads the four hex digits of a \u escape at b[i:].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// str scans a string at p.i (the opening quote), setting p.esc when it has
// escapes and p.bad when it is not valid UTF-8 once unescaped. Invalid UTF-8
// is not a syntax error: it is reported against the field that holds it.
func (p *parser) str() *DecodeError {
	p.esc, p.bad = false, false
	b := p.b
	i := p.i + 1
	for {
		for i < len(b) && strSafe[b[i]] {
			i++
		}
		if i >= len(b) {
			p.i = i
			return p.malformed("'\"' closing the string")
		}
		switch c := b[i]; {
		case c == '"':
			p.i = i + 1
			return nil
		case c == '\\':
			p.esc = true
			if i+1 >= len(b) {
				p.i = i + 1
				return p.malformed("an escape sequence")
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				r, ok := hex4(b, i+2)
				if !ok {
					p.i = i + 2
					for p.i < len(b) && p.i < i+6 && isHex(b[p.i]) {
						p.i++
					}
					return p.malformed("four hex digits")
				}
				i += 6
				if utf16.IsSurrogate(r) {
					// A high surrogate must be followed by an escaped low one.
					if r >= 0xdc00 || i+1 >= len(b) || b[i] != '\\' || b[i+1] != 'u' {
						p.bad = true
						break
					}
					r2, ok := hex4(b, i+2)
					if !ok || r2 < 0xdc00 || r2 > 0xdfff {
						// Leave the next escape to the loop, which checks
						// its syntax.
						p.bad = true
						break
					}
					i += 6
				}
			default:
				p.i = i + 1
				return p.malformed("an escape sequence")
			}
		case c < 0x20:
			p.i = i
			return p.malformed("no control characters in a string (escape them)")
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				p.bad = true
			}
			i += size
		}
	}
}

// unescape appends the content of the string whose characters (without
// quotes) are b[start:end]. Unpaired surrogates become U+FFFD; invalid UTF-8
// is copied as it is.
func unescape(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			j := i + 1
			for j < len(raw) && raw[j] != '\\' {
				j++
			}
			dst = append(dst, raw[i:j]...)
			i = j
			continue
		}
		// The scanner has checked the escapes' syntax.
		switch raw[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, _ := hex4(raw, i+2)
			i += 6
			if utf16.IsSurrogate(r) {
				r2 := rune(utf8.RuneError)
				if r < 0xdc00 && i+1 < len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					if lo, ok := hex4(raw, i+2); ok && lo >= 0xdc00 && lo <= 0xdfff {
						r2 = lo
						i += 6
					}
				}
				r = utf16.DecodeRune(r, r2)
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // '"', '\\', '/'
			dst = append(dst, raw[i+1])
		}
		i += 2
	}
	return dst
}

// content returns the characters of the string value m (or its name, when
// key), unescaped. Without escapes it aliases the input.
func (p *parser) content(start, end int, esc bool) []byte {
	raw := p.b[start:end]
	if !esc {
		return raw
	}
	return unescape(make([]byte, 0, len(raw)), raw)
}

// render renders the value b[start:end] of type vt for an error.
func (p *parser) render(start, end int, vt jsonType) string {
	switch vt {
	case jString:
		return renderString(string(p.content(start+1, end-1, true)))
	case jObject:
		return "{...}"
	case jArray:
		return "[...]"
	}
	return truncate(string(p.b[start:end]))
}

func (p *parser) renderMember(m *member) string { return p.render(m.valStart, m.valEnd, m.vt) }

func (p *parser) key(m *member) string {
	return truncate(string(p.content(m.keyStart, m.keyEnd, m.keyEsc)))
}

// record checks the collected members against the field tables and fills r.
func (p *parser) record(r *Record, ms []member) *DecodeError {
	var idx [numFields]int32 // member index of each seen field
	var seen fieldSet
	for i := range ms {
		m := &ms[i]
		if m.keyEsc {
			m.f = lookupField(p.content(m.keyStart, m.keyEnd, true))
		} else {
			m.f = lookupField(p.b[m.keyStart:m.keyEnd])
		}
		if m.f == fUnknown {
			continue
		}
		if seen.has(m.f) {
			return &DecodeError{Code: CodeDuplicateField, Field: m.f.String(), Value: p.renderMember(m), Expected: "each field at most once"}
		}
		seen |= 1 << m.f
		idx[m.f] = int32(i)
	}

	// schema
	if !seen.has(fSchema) {
		return &DecodeError{Code: CodeMissingField, Field: "schema", Expected: expSchema}
	}
	m := &ms[idx[fSchema]]
	if m.vt != jString {
		return &DecodeError{Code: CodeWrongType, Field: "schema", Value: p.renderMember(m), Expected: expSchema}
	}
	switch string(p.content(m.valStart+1, m.valEnd-1, m.esc)) {
	case EventSchema:
		r.Schema = EventSchema
	case NetworkSchema:
		r.Schema = NetworkSchema
	default:
		return &DecodeError{Code: CodeUnknownSchema, Field: "schema", Value: p.renderMember(m), Expected: expSchema}
	}

	// kind
	if !seen.has(fKind) {
		return &DecodeError{Code: CodeMissingField, Field: "kind", Expected: kindExpected(r.Schema)}
	}
	m = &ms[idx[fKind]]
	if m.vt != jString {
		return &DecodeError{Code: CodeWrongType, Field: "kind", Value: p.renderMember(m), Expected: kindExpected(r.Schema)}
	}
	var sh *shape
	switch string(p.content(m.valStart+1, m.valEnd-1, m.esc)) {
	case "start":
		sh = shapeFor(r.Schema, KindStart)
	case "end":
		sh = shapeFor(r.Schema, KindEnd)
	case "retry":
		sh = shapeFor(r.Schema, KindRetry)
	}
	if sh == nil {
		return &DecodeError{Code: CodeUnknownKind, Field: "kind", Value: p.renderMember(m), Expected: kindExpected(r.Schema)}
	}
	r.Kind = sh.kind

	for i := range ms {
		m := &ms[i]
		if m.f == fUnknown || !sh.allowed.has(m.f) {
			return &DecodeError{Code: CodeUnknownField, Field: p.key(m), Value: p.renderMember(m), Expected: sh.unknownExpected}
		}
	}

	for _, f := range sh.fields {
		if f == fSchema || f == fKind {
			continue
		}
		if !seen.has(f) {
			if sh.required.has(f) {
				return &DecodeError{Code: CodeMissingField, Field: f.String(), Expected: expectedFor(fieldTypes[f])}
			}
			continue
		}
		if err := p.setField(r, f, &ms[idx[f]]); err != nil {
			return err
		}
	}
	if sh == networkStart && r.Operation == "" {
		r.Operation = DefaultOperation
	}
	return nil
}

func (p *parser) setField(r *Record, f field, m *member) *DecodeError {
	t := fieldTypes[f]
	if exp := expectedFor(t); (t == tString || t == tNonEmptyString || t == tTime) && m.vt != jString ||
		(t == tNonNegInt || t == tPort) && (m.vt != jNumber || !m.isInt) {
		return &DecodeError{Code: CodeWrongType, Field: f.String(), Value: p.renderMember(m), Expected: exp}
	}
	switch t {
	case tTime:
		ts, ok := parseRFC3339(p.content(m.valStart+1, m.valEnd-1, m.esc))
		if !ok {
			return &DecodeError{Code: CodeBadTime, Field: f.String(), Value: p.renderMember(m), Expected: expTime}
		}
		if !timeInRange(ts) {
			return &DecodeError{Code: CodeBadTime, Field: f.String(), Value: p.renderMember(m), Expected: expTimeRange}
		}
		r.Time = ts
	case tString, tNonEmptyString:
		if m.bad {
			return &DecodeError{Code: CodeInvalidUTF8, Field: f.String(), Value: p.renderMember(m), Expected: expUTF8}
		}
		c := p.content(m.valStart+1, m.valEnd-1, m.esc)
		if len(c) == 0 && t == tNonEmptyString {
			return &DecodeError{Code: CodeEmptyValue, Field: f.String(), Value: `""`, Expected: expNonEmptyString}
		}
		if f != fError && len(c) > MaxIDBytes {
			return tooLong(f, string(c[:maxRendered+utf8.UTFMax]), len(c))
		}
		var s string
		switch {
		case f == fOperation && string(c) == DefaultOperation:
			s = DefaultOperation // the common value, without an allocation
		case f == fError && len(c) > MaxErrorBytes:
			s = TruncateError(string(c))
		default:
			s = string(c)
		}
		switch f {
		case fTaskID:
			r.TaskID = s
		case fEventName:
			r.EventName = s
		case fPipelineID:
			r.PipelineID = s
		case fError:
			r.Error = s
		case fOpID:
			r.OpID = s
		case fHost:
			r.Host = s
		case fOperation:
			r.Operation = s
		}
	case tNonNegInt, tPort:
		raw := p.b[m.valStart:m.valEnd]
		neg := raw[0] == '-'
		if neg {
			raw = raw[1:]
		}
		var v uint64
		overflow := false
		for _, c := range raw {
			if v > (1<<63-1-9)/10 && v > (1<<63-1-uint64(c-'0'))/10 {
				overflow = true
				break
			}
			v = v*10 + uint64(c-'0')
		}
		if t == tPort {
			if neg && v != 0 || overflow || v < 1 || v > 65535 {
				return &DecodeError{Code: CodeOutOfRange, Field: f.String(), Value: p.renderMember(m), Expected: expPort}
			}
			r.Port = int(v)
			return nil
		}
		if neg && v != 0 || neg && overflow {
			return &DecodeError{Code: CodeNegativeValue, Field: f.String(), Value: p.renderMember(m), Expected: expNonNegInt}
		}
		if overflow {
			return &DecodeError{Code: CodeOutOfRange, Field: f.String(), Value: p.renderMember(m), Expected: expNonNegIntRange}
		}
		switch f {
		case fProcessID:
			pid := int64(v)
			r.ProcessID = &pid
		case fBytesSent:
			r.BytesSent = int64(v)
		case fBytesReceived:
			r.BytesReceived = int64(v)
		}
	}
	return nil
}

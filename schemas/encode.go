package schemas

import (
	"strconv"
	"time"
)

// Encode validates r (see Record.Validate) and returns its canonical JSON
// object: the fields of its schema and kind in the contract's order, optional
// fields omitted when zero (nil ProcessID, empty PipelineID, Error, OpID and
// Operation, zero BytesSent and BytesReceived), and time in UTC as RFC 3339
// with nine fractional digits ("2024-05-01T12:00:00.500000000Z"). A rejected
// Record yields a *DecodeError wrapping ErrInvalidRecord.
//
// Decode(Encode(r)) equals r except that Time comes back in UTC without a
// monotonic clock reading, and that an empty Operation of a network start
// comes back as DefaultOperation.
func Encode(r Record) ([]byte, error) {
	// Records are ~150-250 bytes; one allocation of this size covers most.
	return AppendEncode(make([]byte, 0, 256), r)
}

// AppendEncode is Encode appending to dst, for batching without an
// allocation per record. On error it returns dst unchanged.
func AppendEncode(dst []byte, r Record) ([]byte, error) {
	if err := r.validate(); err != nil {
		return dst, err
	}
	sh := shapeFor(r.Schema, r.Kind)
	b := append(dst, '{')
	first := true
	for _, f := range sh.fields {
		if f != fSchema && f != fKind && f != fTime && !sh.required.has(f) && r.isZero(f) {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, fieldNames[f]...)
		b = append(b, '"', ':')
		switch f {
		case fSchema:
			b = appendString(b, r.Schema)
		case fKind:
			b = appendString(b, string(r.Kind))
		case fTime:
			b = appendTime(b, r.Time)
		case fProcessID:
			b = strconv.AppendInt(b, *r.ProcessID, 10)
		case fPort:
			b = strconv.AppendInt(b, int64(r.Port), 10)
		case fBytesSent:
			b = strconv.AppendInt(b, r.BytesSent, 10)
		case fBytesReceived:
			b = strconv.AppendInt(b, r.BytesReceived, 10)
		case fError:
			b = appendString(b, TruncateError(r.Error))
		default:
			b = appendString(b, r.str(f))
		}
	}
	return append(b, '}'), nil
}

// safeASCII marks the bytes that go into a JSON string unescaped. Bytes >=
// 0x80 are copied as they are: Validate has checked the string is UTF-8.
var safeASCII = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = true
	}
	t['"'] = false
	t['\\'] = false
	return t
}()

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, escaping what RFC 8259 requires.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if safeASCII[c] {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendTime appends t as a quoted RFC 3339 UTC time with nine fractional
// digits. Validate has checked the year is 0000..9999.
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	hour, minute, sec := t.Clock()
	ns := t.Nanosecond()
	b = append(b, '"')
	b = append(b, byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-')
	b = append2(b, int(month), '-')
	b = append2(b, day, 'T')
	b = append2(b, hour, ':')
	b = append2(b, minute, ':')
	b = append2(b, sec, '.')
	var frac [9]byte
	for i := 8; i >= 0; i-- {
		frac[i] = byte('0' + ns%10)
		ns /= 10
	}
	b = append(b, frac[:]...)
	return append(b, 'Z', '"')
}

func append2(b []byte, v int, sep byte) []byte {
	return append(b, byte('0'+v/10), byte('0'+v%10), sep)
}

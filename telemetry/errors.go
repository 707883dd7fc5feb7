package telemetry

import (
	"errors"
	"fmt"
)

// ErrClosed is returned by the Logger's and Network's calls, and by Flush,
// after Close.
var ErrClosed = errors.New("producer closed")

// ErrInvalidOption is returned, wrapped, by NewProducer when an option has a
// value out of its range (the message names the option and the value).
var ErrInvalidOption = errors.New("invalid option")

// DeliveryError reports records the writer could not deliver to Topic: the
// broker rejected them or the writer gave up after its retries. The error
// handler gets one for every record of a failed batch; Flush returns one per
// topic and cause, with Records counting all records that failed that way
// since the previous Flush.
type DeliveryError struct {
	Topic   string
	Records int
	Err     error
}

func (e *DeliveryError) Error() string {
	noun := "records"
	if e.Records == 1 {
		noun = "record"
	}
	return fmt.Sprintf("cannot deliver %d %s to topic %q: %v", e.Records, noun, e.Topic, e.Err)
}

// Unwrap returns the writer's error, for errors.Is with kafka-go's error codes
// (for example kafka.UnknownTopicOrPartition).
func (e *DeliveryError) Unwrap() error { return e.Err }

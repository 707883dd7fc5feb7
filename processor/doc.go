// Package processor is pipetel's stream processor: a kafka-go consumer group
// over the events and network topics, one goroutine per assigned partition,
// that joins each task's start, end and retry records in the state store and
// finishes its metrics. It serves no HTTP: the query API over the store is
// package query.
//
// A partition goroutine reads a batch (up to BatchSize records or BatchWait),
// decodes it, sends invalid records to the dead-letter topic, applies the
// valid ones and the batch's last offset in one state transaction, and only
// then commits the offset to the group. The offset in the state is the truth:
// on assignment a partition resumes after max(committed offset, last applied
// offset + 1), so a crash between the state commit and the group commit
// neither loses nor double-applies a record.
package processor

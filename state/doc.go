// Package state is pipetel's durable state: a Badger store holding, for every
// input partition, the records waiting for their partner (pending tasks), the
// finished metrics with their query indexes, the retry statistics, and the
// offset of the last input record applied. The offset is written in the same
// transaction as the state it produced, so a restart neither loses nor
// double-applies a record. The store also keeps one outbox per publisher: the
// finished metrics that still have to be delivered.
//
// Every key of a partition's state starts with a two-byte tag and the
// partition number, so a partition's state can be listed, copied to a
// changelog, or dropped by prefix.
package state

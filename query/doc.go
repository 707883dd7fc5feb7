// Package query serves pipetel's query API over the state store
// (/api/v1/events, /api/v1/network, /api/v1/retries; the routes and wire
// types are in package schemas, a Go client is in package client).
//
// Alone, an API answers from the partitions its store owns. With a Cluster
// it answers for the whole consumer group: the Cluster reads which instance
// serves which partition from the group coordinator (DescribeGroups, the
// HTTP addresses the processors advertise in their member metadata), a
// lookup of one task is forwarded once to the instance serving its
// partition (ForwardedHeader), and lists and retry statistics are gathered
// from every instance, with cursors that continue across them.
package query

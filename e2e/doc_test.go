// Package e2e holds pipetel's whole-system tests: instances run in-process
// (internal/app) or as pipetel processes (built from cmd/pipetel), against
// the embedded broker or the real Kafka, Elasticsearch and Prometheus that
// make test starts; the fault tests (PIPETEL_TEST_HEAVY=1) kill, freeze and
// restart them.
package e2e

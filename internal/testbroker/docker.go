package testbroker

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// KafkaImage is the image the Docker path runs, single-node KRaft.
const KafkaImage = "apache/kafka:4.1.0"

// dockerReachable reports whether a Docker engine answers: DOCKER_HOST is
// set, or the default socket accepts a connection. The docker client alone
// (as on machines without an engine) does not count.
func dockerReachable() bool {
	if os.Getenv("DOCKER_HOST") != "" {
		return true
	}
	c, err := net.DialTimeout("unix", "/var/run/docker.sock", time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

var (
	containerOnce sync.Once
	containerAddr string
	containerErr  error
)

// kafkaContainer starts one Kafka container per test binary; testcontainers'
// reaper removes it when the binary exits. The broker advertises a fixed
// loopback port chosen before start, so clients on the host reach it.
func kafkaContainer() (string, error) {
	containerOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		port, err := freePort()
		if err != nil {
			containerErr = err
			return
		}
		req := testcontainers.ContainerRequest{
			Image:        KafkaImage,
			ExposedPorts: []string{fmt.Sprintf("127.0.0.1:%d:9092/tcp", port)},
			Env: map[string]string{
				"KAFKA_NODE_ID":                                  "1",
				"KAFKA_PROCESS_ROLES":                            "broker,controller",
				"KAFKA_LISTENERS":                                "PLAINTEXT://0.0.0.0:9092,CONTROLLER://0.0.0.0:9093",
				"KAFKA_ADVERTISED_LISTENERS":                     fmt.Sprintf("PLAINTEXT://127.0.0.1:%d", port),
				"KAFKA_CONTROLLER_LISTENER_NAMES":                "CONTROLLER",
				"KAFKA_LISTENER_SECURITY_PROTOCOL_MAP":           "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
				"KAFKA_CONTROLLER_QUORUM_VOTERS":                 "1@localhost:9093",
				"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":         "1",
				"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
				"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":            "1",
				"KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS":         "0",
				"KAFKA_GROUP_MIN_SESSION_TIMEOUT_MS":             "100",
				"KAFKA_NUM_PARTITIONS":                           "8",
			},
			WaitingFor: wait.ForLog("Kafka Server started").WithStartupTimeout(2 * time.Minute),
		}
		if _, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{ContainerRequest: req, Started: true}); err != nil {
			containerErr = fmt.Errorf("cannot start Kafka container %s: %w", KafkaImage, err)
			return
		}
		containerAddr = fmt.Sprintf("127.0.0.1:%d", port)
	})
	return containerAddr, containerErr
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("cannot find a free port: %w", err)
	}
	defer l.Close()
	addr := l.Addr().String()
	var port int
	_, err = fmt.Sscanf(addr[strings.LastIndex(addr, ":")+1:], "%d", &port)
	return port, err
}

package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/pipetel/pipetel/client"
	"github.com/pipetel/pipetel/schemas"
)

func ExampleClient_Get() {
	url, stop := newServer()
	defer stop()
	c := client.New(url)

	m, err := c.Get(context.Background(), "t-2")
	if err != nil {
		panic(err)
	}
	fmt.Println(m.TaskID, m.EventName, m.Status, *m.DurationSeconds, m.RetryCount, m.Error)
	// Output: t-2 transform failed 2 2 boom
}

func ExampleClient_NetworkOp() {
	url, stop := newServer()
	defer stop()
	c := client.New(url)

	m, err := c.NetworkOp(context.Background(), "t-1", "q1")
	if err != nil {
		panic(err)
	}
	fmt.Println(m.Host, m.Port, m.Operation, m.Status, *m.LatencySeconds, m.BytesSent, m.BytesReceived)
	// Output: db.internal 5432 db_query completed 0.25 120 4096
}

func ExampleClient_FailedEvents() {
	url, stop := newServer()
	defer stop()
	c := client.New(url)

	failed, err := c.FailedEvents(context.Background())
	if err != nil {
		panic(err)
	}
	for _, m := range failed {
		fmt.Println(m.TaskID, m.Error)
	}
	// Output: t-2 boom
}

func ExampleClient_SlowEvents() {
	url, stop := newServer()
	defer stop()
	c := client.New(url)

	slow, err := c.SlowEvents(context.Background(), time.Second)
	if err != nil {
		panic(err)
	}
	for _, m := range slow {
		fmt.Println(m.TaskID, *m.DurationSeconds)
	}
	// Unordered output:
	// t-2 2
	// t-3 3
}

func ExampleClient_RetryStats() {
	url, stop := newServer()
	defer stop()
	c := client.New(url)

	s, err := c.RetryStats(context.Background())
	if err != nil {
		panic(err)
	}
	fmt.Println(s.TotalRetries, s.EventsWithRetries, s.MaxRetries, s.EventsByRetryCount)
	// Output: 3 2 2 map[0:1 1:1 2:1]
}

func ExampleClient_FailedNetworkOps() {
	url, stop := newServer()
	defer stop()
	c := client.New(url)

	failed, err := c.FailedNetworkOps(context.Background())
	if err != nil {
		panic(err)
	}
	for _, m := range failed {
		fmt.Println(m.TaskID, m.OpID, m.Error)
	}
	// Output: t-2 q1 connection reset
}

func ExampleClient_SlowNetworkOps() {
	url, stop := newServer()
	defer stop()
	c := client.New(url)

	slow, err := c.SlowNetworkOps(context.Background(), time.Second)
	if err != nil {
		panic(err)
	}
	for _, m := range slow {
		fmt.Println(m.TaskID, m.OpID, *m.LatencySeconds)
	}
	// Output: t-2 q1 1.5
}

// The API measures running time by its own clock: t-4 started an hour ago.
func ExampleClient_RunningEvents() {
	url, stop := newServer()
	defer stop()
	c := client.New(url)

	running, err := c.RunningEvents(context.Background(), 5*time.Minute)
	if err != nil {
		panic(err)
	}
	for _, m := range running {
		fmt.Println(m.TaskID, m.EventName, m.Status, m.EndTime == nil)
	}
	// Output: t-4 transform pending true
}

func ExampleClient_NetworkOpsOf() {
	url, stop := newServer()
	defer stop()
	c := client.New(url)

	ops, err := c.NetworkOpsOf(context.Background(), "t-1")
	if err != nil {
		panic(err)
	}
	for _, m := range ops {
		fmt.Println(m.OpID, m.Status, *m.LatencySeconds)
	}
	// Output:
	// q1 completed 0.25
	// q2 completed 0.125
}

// The slowest completed events of one event name, longest first.
func ExampleClient_SlowestEvents() {
	url, stop := newServer()
	defer stop()
	c := client.New(url)

	slowest, err := c.SlowestEvents(context.Background(), 2, client.Filter{EventName: "transform", Status: schemas.StatusCompleted})
	if err != nil {
		panic(err)
	}
	for _, m := range slowest {
		fmt.Println(m.TaskID, *m.DurationSeconds)
	}
	// Output:
	// t-3 3
	// t-1 0.5
}

// Events follows the pages: here two of them, of two events each.
func ExampleClient_Events() {
	url, stop := newServer()
	defer stop()
	c := client.New(url)

	for m, err := range c.Events(context.Background(), client.Filter{Limit: 2}) {
		if err != nil {
			panic(err)
		}
		fmt.Println(m.TaskID, m.Status)
	}
	// Output:
	// t-1 completed
	// t-2 failed
	// t-3 completed
	// t-4 pending
}

// An answer other than 200 is an *Error with the status and the API's
// message.
func ExampleError() {
	url, stop := newServer()
	defer stop()
	c := client.New(url)

	_, err := c.Get(context.Background(), "no-such-task")
	var apiErr *client.Error
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound {
		fmt.Println(apiErr.Message)
	}
	_, err = c.EventsPage(context.Background(), client.Filter{Status: schemas.Status("done")})
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.Status, apiErr.Parameter)
	}
	// Output:
	// no event with task_id "no-such-task"
	// 400 status
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pipetel/pipetel/client"
	"github.com/pipetel/pipetel/schemas"
)

const queryUsage = `usage: pipetel query [--addr HOST:PORT] [--token T] [--json] <what> [flags]

  events   [--status S] [--slower-than D] [--event-name E] [--pipeline-id P] [--since T] [--until T]
           [--top N | --limit N] [--cursor C] [--all]
  network  [--status S] [--slower-than D] [--since T] [--until T] [--top N | --limit N] [--cursor C] [--all]
  running  [--longer-than D] [--event-name E] [--pipeline-id P] [--since T] [--until T] [--limit N] [--cursor C] [--all]
  event     TASK_ID
  operation TASK_ID [--op-id ID]
  operations TASK_ID [--limit N] [--cursor C] [--all]
  retries

Times T are RFC 3339 (2006-01-02T15:04:05Z) and bound the start time; durations D are 1.5s, 250ms or 2
(seconds). running lists the open events started more than D ago by the asked instance's clock; --top N
the N slowest. Any instance answers for the whole group. --json prints the API's JSON.
`

// APIError is an error answer of the query API.
type APIError = client.Error

// queryCommand runs "pipetel query": it asks an instance's API and prints an
// aligned table to stdout, or the API's JSON with --json. Hints go to
// stderr.
func queryCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		addr   = "127.0.0.1:9464"
		token  = os.Getenv("PIPETEL_HTTP_TOKEN")
		asJSON bool
	)
	// The flags common to every query may come before or after what is
	// queried: each flag set's defaults are the values parsed so far.
	common := func(name string) *flag.FlagSet {
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		fs.SetOutput(stderr)
		fs.StringVar(&addr, "addr", addr, "address (host:port) of any pipetel instance")
		fs.StringVar(&token, "token", token, "bearer token of an API with http.auth_token (default: PIPETEL_HTTP_TOKEN)")
		fs.BoolVar(&asJSON, "json", asJSON, "print the API's JSON instead of a table")
		fs.Usage = func() { fmt.Fprint(stderr, queryUsage) }
		return fs
	}
	fs := common("query")
	if err := fs.Parse(args); err != nil {
		return helpIsNoError(err)
	}
	if fs.NArg() == 0 {
		fmt.Fprint(stderr, queryUsage)
		return fmt.Errorf("query: expected what to query: events, running, event, network, operation, operations or retries")
	}
	what, rest := fs.Arg(0), fs.Args()[1:]
	sub := common("query " + what)
	var (
		status, slower, cursor, opID string
		limit, top                   int
		all                          bool
		// Passed to the API as given, so that its answer to a bad value
		// (400 naming the parameter) is what the user sees.
		raw = map[string]*string{}
	)
	rawFlag := func(name, param, usage string) {
		v := new(string)
		raw[param] = v
		sub.StringVar(v, name, "", usage)
	}
	list := what == "events" || what == "network" || what == "running"
	if list || what == "operations" {
		sub.IntVar(&limit, "limit", 0, "page size, 1..1000 (default: the API's, 100)")
		sub.StringVar(&cursor, "cursor", "", "continue after a previous page")
		sub.BoolVar(&all, "all", false, "follow the pages to the end")
	}
	if what == "events" || what == "network" {
		sub.StringVar(&status, "status", "", "pending, completed, failed, timed_out or orphan")
		sub.StringVar(&slower, "slower-than", "", "only finished metrics slower than this (1.5s, 250ms, 2)")
		sub.IntVar(&top, "top", 0, "only the N slowest finished metrics of the group, slowest first, in one page")
	}
	if what == "events" || what == "running" {
		rawFlag("event-name", schemas.ParamEventName, "only events of this event name")
		rawFlag("pipeline-id", schemas.ParamPipelineID, "only events of this pipeline")
	}
	if list {
		rawFlag("since", schemas.ParamSince, "only metrics started at or after this RFC 3339 time")
		rawFlag("until", schemas.ParamUntil, "only metrics started before this RFC 3339 time")
	}
	if what == "running" {
		rawFlag("longer-than", schemas.ParamRunningLongerThan, "only events started more than this long ago by the instance's clock (default 0: every running event)")
	}
	if what == "operation" {
		sub.StringVar(&opID, "op-id", "", "the operation's op_id")
	}
	// Flags may come before and after the task id.
	if err := sub.Parse(rest); err != nil {
		return helpIsNoError(err)
	}
	var taskID string
	if what == "event" || what == "operation" || what == "operations" {
		if sub.NArg() == 0 {
			return fmt.Errorf("query %s: expected a TASK_ID", what)
		}
		taskID = sub.Arg(0)
		if err := sub.Parse(sub.Args()[1:]); err != nil {
			return helpIsNoError(err)
		}
	}
	if sub.NArg() > 0 {
		return fmt.Errorf("query %s: unexpected argument %q", what, sub.Arg(0))
	}
	c := client.New("http://"+addr, client.WithToken(token))

	switch what {
	case "events", "network", "running", "operations":
		f := client.Filter{Status: schemas.Status(status), Limit: limit, Cursor: cursor, Top: top, Params: url.Values{}}
		if slower != "" {
			// A value the typed filter cannot carry as given goes as it
			// is, so the API's own answer (400 naming it) stays the same.
			if d, err := schemas.ParseDuration(slower); err == nil && d > 0 {
				f.SlowerThan = d
			} else {
				f.Params.Set(schemas.ParamSlowerThan, slower)
			}
		}
		for param, v := range raw {
			if *v != "" {
				f.Params.Set(param, *v)
			}
		}
		if what == "running" && *raw[schemas.ParamRunningLongerThan] == "" {
			f.Params.Set(schemas.ParamRunningLongerThan, "0")
		}
		path := schemas.PathEvents
		switch what {
		case "network":
			path = schemas.PathNetwork
		case "operations":
			path = schemas.NetworkOpsPath(taskID)
		}
		items, next, raw, err := listPages(ctx, c, path, f, all)
		if err != nil {
			return err
		}
		if asJSON {
			if !all {
				_, err := stdout.Write(raw)
				return err
			}
			return writeIndentless(stdout, schemas.Page[json.RawMessage]{Items: items})
		}
		switch what {
		case "events":
			err = printEvents(stdout, items)
		case "running":
			err = printRunning(stdout, items)
		default:
			err = printNetwork(stdout, items)
		}
		if err == nil && next != "" {
			fmt.Fprintf(stderr, "more results: add --all, or --cursor %s\n", next)
		}
		return err
	case "event", "operation":
		path := schemas.EventPath(taskID)
		if what == "operation" {
			path = schemas.NetworkOpPath(taskID, opID)
		}
		body, err := c.Raw(ctx, path, nil)
		if err != nil {
			return err
		}
		if asJSON {
			_, err := stdout.Write(body)
			return err
		}
		if what == "event" {
			return printEvents(stdout, []json.RawMessage{body})
		}
		return printNetwork(stdout, []json.RawMessage{body})
	case "retries":
		body, err := c.Raw(ctx, schemas.PathRetries, nil)
		if err != nil {
			return err
		}
		if asJSON {
			_, err := stdout.Write(body)
			return err
		}
		return printRetries(stdout, body)
	default:
		fmt.Fprint(stderr, queryUsage)
		return fmt.Errorf("query: unknown %q: expected events, running, event, network, operation, operations or retries", what)
	}
}

// helpIsNoError: --help printed the usage, which is not a failure.
func helpIsNoError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// listPages reads one page of a list, or every page with all. raw is the
// body of the only page read when all is false.
func listPages(ctx context.Context, c *client.Client, path string, f client.Filter, all bool) (items []json.RawMessage, next string, raw []byte, err error) {
	items = []json.RawMessage{}
	for {
		q := f.Query()
		body, err := c.Raw(ctx, path, q)
		if err != nil {
			return nil, "", nil, err
		}
		var page schemas.Page[json.RawMessage]
		if err := json.Unmarshal(body, &page); err != nil {
			p := path
			if len(q) > 0 {
				p += "?" + q.Encode()
			}
			return nil, "", nil, fmt.Errorf("cannot decode the answer to %q: %w", p, err)
		}
		items = append(items, page.Items...)
		if !all || page.Next == "" {
			return items, page.Next, body, nil
		}
		f.Cursor = page.Next
	}
}

func writeIndentless(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// cell keeps a value on one table cell.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(s)
}

// seconds shows a duration in seconds as Go does ("1.5s", "250ms"); "-"
// when it is not known yet.
func seconds(v *float64) string {
	if v == nil {
		return "-"
	}
	return time.Duration(math.Round(*v * float64(time.Second))).String()
}

func printEvents(w io.Writer, items []json.RawMessage) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK_ID\tEVENT_NAME\tSTATUS\tDURATION\tRETRIES\tERROR")
	for _, it := range items {
		var m schemas.EventMetric
		if err := json.Unmarshal(it, &m); err != nil {
			return fmt.Errorf("cannot decode event %s: %w", it, err)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", cell(m.TaskID), cell(m.EventName), cell(string(m.Status)),
			seconds(m.DurationSeconds), m.RetryCount, cell(m.Error))
	}
	return tw.Flush()
}

// printRunning shows when each open event started; how long ago is the
// API's to say (its clock decided which are listed), not this host's.
func printRunning(w io.Writer, items []json.RawMessage) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK_ID\tEVENT_NAME\tPIPELINE_ID\tSTART_TIME\tRETRIES")
	for _, it := range items {
		var m schemas.EventMetric
		if err := json.Unmarshal(it, &m); err != nil {
			return fmt.Errorf("cannot decode event %s: %w", it, err)
		}
		start := "-"
		if m.StartTime != nil {
			start = m.StartTime.Format(time.RFC3339Nano)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", cell(m.TaskID), cell(m.EventName), cell(m.PipelineID), start, m.RetryCount)
	}
	return tw.Flush()
}

func printNetwork(w io.Writer, items []json.RawMessage) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK_ID\tOP_ID\tHOST\tPORT\tOPERATION\tSTATUS\tLATENCY\tBYTES_SENT\tBYTES_RECEIVED\tERROR")
	for _, it := range items {
		var m schemas.NetworkMetric
		if err := json.Unmarshal(it, &m); err != nil {
			return fmt.Errorf("cannot decode network operation %s: %w", it, err)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%d\t%d\t%s\n", cell(m.TaskID), cell(m.OpID), cell(m.Host), m.Port,
			cell(m.Operation), cell(string(m.Status)), seconds(m.LatencySeconds), m.BytesSent, m.BytesReceived, cell(m.Error))
	}
	return tw.Flush()
}

func printRetries(w io.Writer, body []byte) error {
	var s schemas.RetrySummary
	if err := json.Unmarshal(body, &s); err != nil {
		return fmt.Errorf("cannot decode retry statistics %s: %w", bytes.TrimSpace(body), err)
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "TOTAL_RETRIES\tEVENTS_WITH_RETRIES\tMAX_RETRIES")
	fmt.Fprintf(tw, "%d\t%d\t%d\n\n", s.TotalRetries, s.EventsWithRetries, s.MaxRetries)
	fmt.Fprintln(tw, "RETRY_COUNT\tEVENTS")
	counts := make([]int64, 0, len(s.EventsByRetryCount))
	for k := range s.EventsByRetryCount {
		n, err := strconv.ParseInt(k, 10, 64)
		if err != nil {
			return fmt.Errorf("cannot read retry statistics: bad retry count %q", k)
		}
		counts = append(counts, n)
	}
	slices.Sort(counts)
	for _, n := range counts {
		fmt.Fprintf(tw, "%d\t%d\n", n, s.EventsByRetryCount[strconv.FormatInt(n, 10)])
	}
	return tw.Flush()
}

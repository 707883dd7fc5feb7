package query

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/singleflight"

	"github.com/pipetel/pipetel/internal/membership"
	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/state"
)

// ForwardedHeader marks a request one instance sent to another on behalf of
// a client. An instance answers such a request from its own store and never
// forwards it again, so a stale routing table cannot make requests loop.
const ForwardedHeader = "X-Pipetel-Forwarded"

// ClusterConfig is what the cluster view needs of the instance's
// configuration (the processor section of pipetel's config).
type ClusterConfig struct {
	// Brokers are the bootstrap addresses (host:port). Required.
	Brokers []string
	// GroupID is the processor's consumer group. Required.
	GroupID string
	// EventsTopic and NetworkTopic are the group's input topics. Defaults
	// schemas.DefaultEventsTopic and schemas.DefaultNetworkTopic.
	EventsTopic, NetworkTopic string
	// AdvertiseHTTP is the address (host:port) the other instances reach
	// this one's API at, as the processor advertises it in its member
	// metadata (processor.advertise_http). Required.
	AdvertiseHTTP string
	// Transport connects to the brokers (TLS, SASL); nil: plaintext.
	Transport *kafka.Transport
	// Token, when set, is the bearer token the API requires
	// (http.auth_token); forwarded requests carry it.
	Token string
}

// ErrNoOwner is returned, wrapped in a *RouteError or with the partitions it
// concerns, when the group's current assignment names no reachable instance
// for a partition: the group is rebalancing, or the member holding the
// partition advertises no HTTP address.
var ErrNoOwner = errors.New("no instance of the consumer group serves it")

// RouteError says why a request for one partition could not be sent to the
// instance that serves it.
type RouteError struct {
	Topic     string
	Partition int
	// Addr is the owner's advertised address; empty when no owner is known.
	Addr string
	Err  error
}

func (e *RouteError) Error() string {
	if e.Addr != "" {
		return fmt.Sprintf("cannot reach the instance at %s that serves partition %d of topic %q: %v", e.Addr, e.Partition, e.Topic, e.Err)
	}
	return fmt.Sprintf("cannot route partition %d of topic %q: %v", e.Partition, e.Topic, e.Err)
}

func (e *RouteError) Unwrap() error { return e.Err }

// MemberError is the failure of a request to another instance: it could not
// be reached (Status 0, Err set), its answer could not be read (Status 502,
// Err set), or it answered with an error (Status and Body, relayed to the
// client as they are).
type MemberError struct {
	Addr   string
	Status int
	Body   []byte
	Err    error
}

func (e *MemberError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("cannot query the instance at %s: %v", e.Addr, e.Err)
	}
	return fmt.Sprintf("the instance at %s answered %d: %s", e.Addr, e.Status, strings.TrimSpace(string(e.Body)))
}

func (e *MemberError) Unwrap() error { return e.Err }

// groupClient is the part of kafka.Client the cluster view uses.
type groupClient interface {
	DescribeGroups(ctx context.Context, req *kafka.DescribeGroupsRequest) (*kafka.DescribeGroupsResponse, error)
	Metadata(ctx context.Context, req *kafka.MetadataRequest) (*kafka.MetadataResponse, error)
}

var _ groupClient = (*kafka.Client)(nil)

// Cluster is this instance's view of the consumer group: which instance,
// by its advertised HTTP address, serves which partitions, and in which
// partition a task lives. The API uses it to answer for the whole group.
type Cluster struct {
	cfg        ClusterConfig
	client     groupClient
	transport  *kafka.Transport // nil when the client was injected
	httpClient *http.Client
	ttl        time.Duration
	countTTL   time.Duration
	flight     singleflight.Group

	mu       sync.Mutex // leaf: never held across a request
	table    *routing
	counts   map[string]int
	countsAt time.Time
}

// ClusterOption configures NewCluster.
type ClusterOption func(*Cluster)

// WithRoutingTTL sets how long a routing table read from the group
// coordinator is used before it is read again. A partition with no owner in
// the cached table makes it be read again at once. Default 2s.
func WithRoutingTTL(d time.Duration) ClusterOption { return func(c *Cluster) { c.ttl = d } }

// WithForwardTimeout bounds one request to another instance. Default 10s.
func WithForwardTimeout(d time.Duration) ClusterOption {
	return func(c *Cluster) { c.httpClient.Timeout = d }
}

// withGroupClient replaces the Kafka client, for tests.
func withGroupClient(gc groupClient) ClusterOption {
	return func(c *Cluster) { c.client, c.transport = gc, nil }
}

// NewCluster returns the group view of the instance configured by cfg; its
// AdvertiseHTTP must be the address this instance's API is reached at.
func NewCluster(cfg ClusterConfig, opts ...ClusterOption) (*Cluster, error) {
	if cfg.EventsTopic == "" {
		cfg.EventsTopic = schemas.DefaultEventsTopic
	}
	if cfg.NetworkTopic == "" {
		cfg.NetworkTopic = schemas.DefaultNetworkTopic
	}
	switch {
	case len(cfg.Brokers) == 0:
		return nil, fmt.Errorf("processor.brokers: got [], expected at least one host:port address")
	case cfg.GroupID == "":
		return nil, fmt.Errorf("processor.group_id: got \"\", expected the consumer group")
	}
	if err := membership.Check(cfg.AdvertiseHTTP); err != nil {
		return nil, fmt.Errorf("processor.advertise_http: got %q (%v), expected the host:port other instances reach this one at: a DNS name or IP address and a port", cfg.AdvertiseHTTP, err)
	}
	tr := cfg.Transport
	if tr == nil {
		tr = &kafka.Transport{}
	}
	httpTransport := http.DefaultTransport.(*http.Transport).Clone()
	c := &Cluster{
		cfg:       cfg,
		client:    &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Transport: tr, Timeout: 5 * time.Second},
		transport: tr,
		httpClient: &http.Client{Transport: httpTransport, Timeout: 10 * time.Second,
			// An answer is relayed as it is; a redirect would make this
			// instance fetch whatever another one points it at.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		ttl:      2 * time.Second,
		countTTL: time.Minute,
	}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// Close releases idle connections to the brokers and to other instances.
func (c *Cluster) Close() error {
	if c.transport != nil {
		c.transport.CloseIdleConnections()
	}
	c.httpClient.CloseIdleConnections()
	return nil
}

// member is one instance of the group, by its advertised address.
type member struct {
	addr  string
	self  bool
	parts map[string][]int // topic → sorted partitions
}

// routing is the group's assignment at one moment.
type routing struct {
	group, state string
	members      []member               // sorted by address
	owner        map[string]map[int]int // topic → partition → index in members
	fetched      time.Time
}

// newRouting builds the routing table from a DescribeGroups answer. Members
// are keyed by the address in their metadata's user data; a member without
// a valid address cannot be reached, so its partitions have no owner. Two
// members with one address (a restarted instance whose old member has not
// expired yet) are one instance.
func newRouting(g kafka.DescribeGroupsResponseGroup, self string) (*routing, error) {
	if g.Error != nil {
		return nil, fmt.Errorf("cannot describe consumer group %q: %w", g.GroupID, g.Error)
	}
	rt := &routing{group: g.GroupID, state: g.GroupState, owner: map[string]map[int]int{}}
	byAddr := map[string]int{}
	for _, m := range g.Members {
		addr := membership.Addr(m.MemberMetadata.UserData)
		if membership.Check(addr) != nil {
			continue // unreachable by design: its partitions have no owner
		}
		i, ok := byAddr[addr]
		if !ok {
			i = len(rt.members)
			byAddr[addr] = i
			rt.members = append(rt.members, member{addr: addr, self: addr == self, parts: map[string][]int{}})
		}
		for _, t := range m.MemberAssignments.Topics {
			rt.members[i].parts[t.Topic] = append(rt.members[i].parts[t.Topic], t.Partitions...)
		}
	}
	slices.SortFunc(rt.members, func(a, b member) int { return strings.Compare(a.addr, b.addr) })
	for i, m := range rt.members {
		for topic, parts := range m.parts {
			slices.Sort(parts)
			m.parts[topic] = slices.Compact(parts)
			if rt.owner[topic] == nil {
				rt.owner[topic] = map[int]int{}
			}
			for _, p := range m.parts[topic] {
				if _, taken := rt.owner[topic][p]; !taken {
					rt.owner[topic][p] = i
				}
			}
		}
	}
	return rt, nil
}

// ownerOf returns the member serving a partition.
func (rt *routing) ownerOf(topic string, partition int) (member, bool) {
	i, ok := rt.owner[topic][partition]
	if !ok {
		return member{}, false
	}
	return rt.members[i], true
}

// onlySelf reports whether this instance is the whole group.
func (rt *routing) onlySelf() bool { return len(rt.members) == 1 && rt.members[0].self }

// uncovered lists the partitions of topic, out of n, that no member serves.
func (rt *routing) uncovered(topic string, n int) []int {
	var missing []int
	for p := range n {
		if _, ok := rt.owner[topic][p]; !ok {
			missing = append(missing, p)
		}
	}
	return missing
}

// serving lists the members that serve partitions of topic, in address
// order, and a fingerprint of that assignment.
func (rt *routing) serving(topic string) ([]member, string) {
	var ms []member
	h := fnv.New64a()
	for _, m := range rt.members {
		if len(m.parts[topic]) == 0 {
			continue
		}
		ms = append(ms, m)
		fmt.Fprintf(h, "%s=%v;", m.addr, m.parts[topic])
	}
	return ms, strconv.FormatUint(h.Sum64(), 36)
}

// noOwner is the reason a partition has no owner in rt.
func (rt *routing) noOwner() error {
	return fmt.Errorf("%w (consumer group %q is %s with %d reachable members)", ErrNoOwner, rt.group, rt.state, len(rt.members))
}

// routing returns the cached routing table, reading it again when it is
// older than the TTL, or when refresh is set and it is older than a tenth of
// the TTL (a miss: the cache may predate a rebalance).
func (c *Cluster) routing(ctx context.Context, refresh bool) (*routing, error) {
	c.mu.Lock()
	rt := c.table
	c.mu.Unlock()
	if rt != nil {
		age := time.Since(rt.fetched)
		if age < c.ttl && (!refresh || age < c.ttl/10) {
			return rt, nil
		}
	}
	v, err, _ := c.flight.Do("routing", func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		resp, err := c.client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{c.cfg.GroupID}})
		if err != nil {
			return nil, fmt.Errorf("cannot describe consumer group %q: %w", c.cfg.GroupID, err)
		}
		if len(resp.Groups) != 1 {
			return nil, fmt.Errorf("cannot describe consumer group %q: the coordinator returned %d groups", c.cfg.GroupID, len(resp.Groups))
		}
		rt, err := newRouting(resp.Groups[0], c.cfg.AdvertiseHTTP)
		if err != nil {
			return nil, err
		}
		rt.fetched = time.Now()
		c.mu.Lock()
		c.table = rt
		c.mu.Unlock()
		return rt, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*routing), nil
}

// invalidate drops the cached routing table, after an owner could not be
// reached.
func (c *Cluster) invalidate() {
	c.mu.Lock()
	c.table = nil
	c.mu.Unlock()
}

// partitionCount returns the number of partitions of topic, from a Metadata
// request cached for a minute; a failed refresh keeps the last known count.
func (c *Cluster) partitionCount(ctx context.Context, topic string) (int, error) {
	c.mu.Lock()
	n, ok := c.counts[topic]
	fresh := time.Since(c.countsAt) < c.countTTL
	c.mu.Unlock()
	if ok && fresh {
		return n, nil
	}
	_, err, _ := c.flight.Do("metadata", func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		topics := []string{c.cfg.EventsTopic, c.cfg.NetworkTopic}
		resp, err := c.client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
		if err != nil {
			return nil, fmt.Errorf("cannot read metadata of topics %q: %w", topics, err)
		}
		counts := map[string]int{}
		for _, t := range resp.Topics {
			if t.Error == nil && len(t.Partitions) > 0 {
				counts[t.Name] = len(t.Partitions)
			}
		}
		c.mu.Lock()
		c.counts, c.countsAt = counts, time.Now()
		c.mu.Unlock()
		return nil, nil
	})
	c.mu.Lock()
	n, found := c.counts[topic]
	c.mu.Unlock()
	switch {
	case found:
		return n, nil
	case ok:
		return n, nil // the refresh failed: keep the last known count
	case err != nil:
		return 0, err
	default:
		return 0, fmt.Errorf("cannot read metadata of topic %q: the broker does not know it", topic)
	}
}

// partition returns the partition of topic that holds taskID's records: the
// producers' Murmur2 of the key over the topic's partitions.
func (c *Cluster) partition(ctx context.Context, topic, taskID string) (int, error) {
	n, err := c.partitionCount(ctx, topic)
	if err != nil {
		return 0, err
	}
	parts := make([]int, n)
	for i := range parts {
		parts[i] = i
	}
	return kafka.Murmur2Balancer{}.Balance(kafka.Message{Key: []byte(taskID)}, parts...), nil
}

// owner returns the member serving a partition, reading the table again
// once when the cached one has no owner for it.
func (c *Cluster) owner(ctx context.Context, topic string, partition int) (member, error) {
	rt, err := c.routing(ctx, false)
	if err == nil {
		if m, ok := rt.ownerOf(topic, partition); ok {
			return m, nil
		}
		rt, err = c.routing(ctx, true)
	}
	if err != nil {
		return member{}, &RouteError{Topic: topic, Partition: partition, Err: err}
	}
	if m, ok := rt.ownerOf(topic, partition); ok {
		return m, nil
	}
	return member{}, &RouteError{Topic: topic, Partition: partition, Err: rt.noOwner()}
}

// servingAll returns the routing table once every partition of topic has an
// owner in it, reading it again once if not.
func (c *Cluster) servingAll(ctx context.Context, topic string) (*routing, error) {
	n, err := c.partitionCount(ctx, topic)
	if err != nil {
		return nil, err
	}
	rt, err := c.routing(ctx, false)
	if err != nil {
		return nil, err
	}
	if len(rt.uncovered(topic, n)) == 0 {
		return rt, nil
	}
	if rt, err = c.routing(ctx, true); err != nil {
		return nil, err
	}
	if missing := rt.uncovered(topic, n); len(missing) > 0 {
		return nil, fmt.Errorf("cannot answer for topic %q across the group: partitions %v: %w", topic, missing, rt.noOwner())
	}
	return rt, nil
}

// get sends a GET for uri (path and query) to the instance at addr, marked
// as forwarded.
func (c *Cluster) get(ctx context.Context, addr, uri string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+uri, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set(ForwardedHeader, "1")
	if c.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	}
	return c.httpClient.Do(req)
}

// getJSON asks the instance at addr for uri and decodes a 200 answer into
// out; anything else is a *MemberError.
func (c *Cluster) getJSON(ctx context.Context, addr, uri string, out any) error {
	resp, err := c.get(ctx, addr, uri)
	if err != nil {
		c.invalidate()
		return &MemberError{Addr: addr, Err: err}
	}
	defer resp.Body.Close()
	body, err := readMemberBody(resp.Body)
	if err != nil {
		c.invalidate()
		return &MemberError{Addr: addr, Err: err}
	}
	if resp.StatusCode != http.StatusOK {
		return &MemberError{Addr: addr, Status: resp.StatusCode, Body: body}
	}
	if err := json.Unmarshal(body, out); err != nil {
		return &MemberError{Addr: addr, Status: http.StatusBadGateway, Body: body, Err: fmt.Errorf("cannot decode the answer to %q: %w", uri, err)}
	}
	return nil
}

// rawPage is a list page whose items are kept as their JSON, so that pages
// of other instances are relayed byte for byte.
type rawPage = schemas.Page[json.RawMessage]

// clusterCursor continues a list across the instances of the group: the
// members before Member (in address order) are exhausted, Member is read
// from its own cursor Local, and the ones after it are not started.
// Assignment is the fingerprint of the assignment the first page was made
// under: local cursors are only meaningful for the partitions they were
// made over.
type clusterCursor struct {
	Assignment string `json:"a"`
	Member     int    `json:"m"`
	Local      string `json:"c,omitempty"`
}

// cursorPrefix marks a cluster cursor; a local cursor is unpadded base64url,
// which never holds a '.'.
const cursorPrefix = "c."

func isClusterCursor(s string) bool { return strings.HasPrefix(s, cursorPrefix) }

func (cc clusterCursor) encode() string {
	b, _ := json.Marshal(cc)
	return cursorPrefix + base64.RawURLEncoding.EncodeToString(b)
}

func decodeClusterCursor(s string) (clusterCursor, error) {
	var cc clusterCursor
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(s, cursorPrefix))
	if err != nil || !isClusterCursor(s) || json.Unmarshal(b, &cc) != nil || cc.Member < 0 || cc.Assignment == "" {
		return cc, fmt.Errorf("cannot continue from cursor %q: %w", s, state.ErrBadCursor)
	}
	return cc, nil
}

// ErrAssignmentChanged is returned when a list cursor was made under another
// assignment of partitions to instances: its position cannot be carried
// over, and the list must start again.
var ErrAssignmentChanged = errors.New("the group's assignment of partitions changed since the first page; list again without a cursor")

// fetchFunc reads up to limit items of one member's own partitions, from
// its cursor.
type fetchFunc func(m member, limit int, cursor string) (rawPage, error)

// mergePages makes one page of at most limit items out of the members'
// pages, in member order, continuing from cursor (empty for the first
// page).
func mergePages(members []member, fingerprint, cursor string, limit int, fetch fetchFunc) (rawPage, error) {
	if limit <= 0 {
		limit = schemas.DefaultLimit
	}
	cc := clusterCursor{Assignment: fingerprint}
	if cursor != "" {
		var err error
		if cc, err = decodeClusterCursor(cursor); err != nil {
			return rawPage{}, err
		}
		if cc.Assignment != fingerprint {
			return rawPage{}, fmt.Errorf("cannot continue from cursor %q: %w", cursor, ErrAssignmentChanged)
		}
		if cc.Member >= len(members) {
			return rawPage{}, fmt.Errorf("cannot continue from cursor %q: %w", cursor, state.ErrBadCursor)
		}
	}
	page := rawPage{Items: []json.RawMessage{}}
	for i := cc.Member; i < len(members); i++ {
		local := ""
		if i == cc.Member {
			local = cc.Local
		}
		p, err := fetch(members[i], limit-len(page.Items), local)
		if err != nil {
			return rawPage{}, err
		}
		page.Items = append(page.Items, p.Items...)
		switch {
		case p.Next != "":
			page.Next = clusterCursor{Assignment: fingerprint, Member: i, Local: p.Next}.encode()
			return page, nil
		case len(page.Items) >= limit && i+1 < len(members):
			page.Next = clusterCursor{Assignment: fingerprint, Member: i + 1}.encode()
			return page, nil
		}
	}
	return page, nil
}

// mergeRetries adds up the retry statistics of disjoint sets of partitions.
func mergeRetries(parts ...schemas.RetrySummary) schemas.RetrySummary {
	sum := schemas.RetrySummary{EventsByRetryCount: map[string]int64{}}
	for _, p := range parts {
		sum.TotalRetries += p.TotalRetries
		sum.EventsWithRetries += p.EventsWithRetries
		sum.MaxRetries = max(sum.MaxRetries, p.MaxRetries)
		for k, n := range p.EventsByRetryCount {
			sum.EventsByRetryCount[k] += n
		}
	}
	return sum
}

// localQuery builds the query of a list request as sent to one member: its
// own partitions, its share of the limit, its own cursor.
func localQuery(q url.Values, limit int, cursor string) string {
	lq := url.Values{}
	for k, v := range q {
		lq[k] = v
	}
	lq.Set(schemas.ParamScope, schemas.ScopeLocal)
	lq.Set(schemas.ParamLimit, strconv.Itoa(limit))
	lq.Del(schemas.ParamCursor)
	if cursor != "" {
		lq.Set(schemas.ParamCursor, cursor)
	}
	return lq.Encode()
}

package processor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pipetel/pipetel/internal/membership"
)

// ErrDuplicateAdvertise is returned (wrapped) by Processor.Run when two live
// members of the group advertise the same HTTP address: the cluster view
// would take them for one instance and answer lists with only some of the
// partitions. Typical cause: advertise_http left at its default, or set to
// a loopback or wildcard address, on several hosts.
var ErrDuplicateAdvertise = errors.New("several instances advertise one HTTP address")

// checkAdvertised looks for members of the group that advertise one
// address. A restarted instance's old member shares its address until the
// session timeout removes it, so a duplicate only counts when the same
// members still share the address after that timeout.
func (p *Processor) checkAdvertised(ctx context.Context, client *kafka.Client) error {
	first, err := p.sharedAddresses(ctx, client)
	if err != nil || len(first) == 0 {
		return nil // a failed look is retried with the next generation
	}
	sleepCtx(ctx, p.cfg.SessionTimeout+p.cfg.HeartbeatInterval)
	if ctx.Err() != nil {
		return nil
	}
	second, err := p.sharedAddresses(ctx, client)
	if err != nil {
		return nil
	}
	for addr, ids := range second {
		var both []string
		for _, id := range ids {
			if slices.Contains(first[addr], id) {
				both = append(both, id)
			}
		}
		if len(both) > 1 {
			return fmt.Errorf("processor.advertise_http: members %s of group %q all advertise %q for longer than the session timeout: %w; "+
				"set advertise_http on each instance to the host:port the others reach it at (in Kubernetes, the pod's DNS name)",
				strings.Join(both, ", "), p.cfg.GroupID, addr, ErrDuplicateAdvertise)
		}
	}
	return nil
}

// sharedAddresses returns the advertised addresses that more than one
// member of the group carries, with those members' ids.
func (p *Processor) sharedAddresses(ctx context.Context, client *kafka.Client) (map[string][]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{p.cfg.GroupID}})
	if err != nil {
		return nil, err
	}
	byAddr := map[string][]string{}
	for _, g := range resp.Groups {
		if g.Error != nil {
			return nil, g.Error
		}
		for _, m := range g.Members {
			addr := membership.Addr(m.MemberMetadata.UserData)
			byAddr[addr] = append(byAddr[addr], m.MemberID)
		}
	}
	for addr, ids := range byAddr {
		if len(ids) < 2 {
			delete(byAddr, addr)
		}
	}
	return byAddr, nil
}

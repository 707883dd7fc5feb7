// Package membership is the contract between the processor, which puts this
// instance's HTTP address into its consumer group member metadata, and the
// query API's cluster view (and the processor's duplicate check), which read
// it back from DescribeGroups: how the address is carried and which
// addresses are valid.
package membership

import (
	"errors"
	"fmt"
	"net"
	"strconv"
)

// UserData is the member metadata's user data that advertises addr.
func UserData(addr string) []byte { return []byte(addr) }

// Addr is the address a member's metadata user data advertises, valid or
// not: check it with Check before dialling it.
func Addr(userData []byte) string { return string(userData) }

// Check accepts only host:port where host is a DNS name or an IP address
// that another instance can dial, and port a number 1..65535: the address
// travels in member metadata and is put into URLs, so nothing else (paths,
// queries, user info, wildcard addresses) may pass.
func Check(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 || strconv.Itoa(p) != port {
		return fmt.Errorf("port %q: expected a number 1..65535", port)
	}
	if ip := net.ParseIP(host); ip != nil {
		if ip.IsUnspecified() {
			return fmt.Errorf("host %q is a wildcard address other instances cannot dial", host)
		}
		return nil
	}
	if host == "" || len(host) > 253 {
		return errors.New("host: expected a DNS name or an IP address")
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return fmt.Errorf("host %q: byte %q at %d, expected letters, digits, '-' and '.'", host, c, i)
		}
	}
	return nil
}

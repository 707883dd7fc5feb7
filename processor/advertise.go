package processor

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
)

// maxMemberBody bounds what this instance reads from another one: far above
// a page of 1000 metrics, far below what would hurt.
const maxMemberBody = 16 << 20

// errBodyTooLarge is returned when a member's answer passes maxMemberBody.
var errBodyTooLarge = fmt.Errorf("answer longer than %d bytes", maxMemberBody)

// checkAdvertise accepts only host:port where host is a DNS name or an IP
// address that another instance can dial, and port a number 1..65535: the
// address travels in member metadata and is put into URLs, so nothing else
// (paths, queries, user info, wildcard addresses) may pass.
func checkAdvertise(addr string) error {
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

// readMemberBody reads an answer of another instance, at most maxMemberBody.
func readMemberBody(r io.Reader) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r, maxMemberBody+1))
	if err == nil && len(body) > maxMemberBody {
		err = errBodyTooLarge
	}
	return body, err
}

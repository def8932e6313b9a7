package translator

import (
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// defaultServerPort is kube-apiserver's port when an endpoint names none.
const defaultServerPort = 443

// parseEndpoint parses a server endpoint of the form https://host[:port].
// It is strict on purpose: anything Envoy would interpret differently from
// a human reader (paths, credentials, queries, other schemes) is an error
// rather than something silently dropped.
func parseEndpoint(endpoint string) (ServerIR, error) {
	if endpoint == "" {
		return ServerIR{}, fmt.Errorf("endpoint is empty")
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return ServerIR{}, fmt.Errorf("endpoint %q: %w", endpoint, err)
	}
	switch {
	case u.Scheme != "https":
		return ServerIR{}, fmt.Errorf("endpoint %q: scheme must be https", endpoint)
	case u.Opaque != "":
		return ServerIR{}, fmt.Errorf("endpoint %q: must be https://host[:port]", endpoint)
	case u.User != nil:
		return ServerIR{}, fmt.Errorf("endpoint %q: must not carry credentials", endpoint)
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.ForceQuery, u.Fragment != "":
		return ServerIR{}, fmt.Errorf("endpoint %q: must not have a path, query or fragment", endpoint)
	}

	host := u.Hostname()
	if host == "" {
		return ServerIR{}, fmt.Errorf("endpoint %q: host is empty", endpoint)
	}
	port := uint32(defaultServerPort)
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return ServerIR{}, fmt.Errorf("endpoint %q: port must be 1-65535", endpoint)
		}
		port = uint32(n)
	} else if strings.HasSuffix(u.Host, ":") {
		return ServerIR{}, fmt.Errorf("endpoint %q: port is empty", endpoint)
	}

	bracketed := strings.HasPrefix(u.Host, "[")
	if addr, err := netip.ParseAddr(host); err == nil {
		if addr.Zone() != "" {
			return ServerIR{}, fmt.Errorf("endpoint %q: IPv6 zones are not supported", endpoint)
		}
		if addr.Is6() && !addr.Is4In6() && !bracketed {
			return ServerIR{}, fmt.Errorf("endpoint %q: IPv6 addresses must be bracketed", endpoint)
		}
		return ServerIR{Host: addr.String(), Port: port, IsIP: true}, nil
	}
	if bracketed {
		return ServerIR{}, fmt.Errorf("endpoint %q: %q is not an IPv6 address", endpoint, host)
	}
	host = strings.ToLower(host)
	if last := host[strings.LastIndexByte(host, '.')+1:]; strings.Trim(last, "0123456789") == "" {
		// All-numeric top label: a mistyped IP address, never a DNS name.
		return ServerIR{}, fmt.Errorf("endpoint %q: %q is not a valid IP address", endpoint, host)
	}
	if errs := validation.IsDNS1123Subdomain(host); len(errs) > 0 {
		return ServerIR{}, fmt.Errorf("endpoint %q: host %q is neither an IP address nor a DNS name: %s",
			endpoint, host, strings.Join(errs, "; "))
	}
	return ServerIR{Host: host, Port: port}, nil
}

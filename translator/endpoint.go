package translator

import (
	"errors"
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
// rather than something silently dropped. The error is the detail of a
// field error on the endpoint's path, so it does not repeat the endpoint.
func parseEndpoint(endpoint string) (ServerIR, error) {
	if endpoint == "" {
		return ServerIR{}, errors.New("must not be empty")
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the rest repeats the endpoint
		}
		return ServerIR{}, err
	}
	switch {
	case u.Scheme != "https":
		return ServerIR{}, errors.New("scheme must be https")
	case u.Opaque != "":
		return ServerIR{}, errors.New("must be https://host[:port]")
	case u.User != nil:
		return ServerIR{}, errors.New("must not carry credentials")
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.ForceQuery, u.Fragment != "":
		return ServerIR{}, errors.New("must not have a path, query or fragment")
	}

	host := u.Hostname()
	if host == "" {
		return ServerIR{}, errors.New("must have a host")
	}
	port := uint32(defaultServerPort)
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return ServerIR{}, errors.New("port " + validation.InclusiveRangeError(1, 65535))
		}
		port = uint32(n)
	} else if strings.HasSuffix(u.Host, ":") {
		return ServerIR{}, errors.New("port must not be empty after ':'")
	}

	bracketed := strings.HasPrefix(u.Host, "[")
	if addr, err := netip.ParseAddr(host); err == nil {
		if addr.Zone() != "" {
			return ServerIR{}, errors.New("IPv6 zones are not supported")
		}
		if addr.Is6() && !addr.Is4In6() && !bracketed {
			return ServerIR{}, errors.New("IPv6 addresses must be bracketed")
		}
		return ServerIR{Host: addr.String(), Port: port, IsIP: true}, nil
	}
	if bracketed {
		return ServerIR{}, fmt.Errorf("%q in brackets is not an IPv6 address", host)
	}
	host = strings.ToLower(host)
	if last := host[strings.LastIndexByte(host, '.')+1:]; strings.Trim(last, "0123456789") == "" {
		// All-numeric top label: a mistyped IP address, never a DNS name.
		return ServerIR{}, fmt.Errorf("host %q is not a valid IP address", host)
	}
	if errs := validation.IsDNS1123Subdomain(host); len(errs) > 0 {
		return ServerIR{}, fmt.Errorf("host %q is neither an IP address nor a DNS name: %s", host, strings.Join(errs, "; "))
	}
	return ServerIR{Host: host, Port: port}, nil
}

package notify

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// ErrRefusedTarget is returned for a webhook target the Guard refuses.
var ErrRefusedTarget = errors.New("webhook target refused")

// Guard decides which addresses webhook calls may reach. It is applied to
// the URL when an endpoint is created and again to the address actually
// dialled, after name resolution, so a name that resolves (or is
// re-pointed) to an internal address is refused too (DNS rebinding).
type Guard struct {
	// AllowPrivate allows loopback, private, link-local and other
	// non-public addresses.
	AllowPrivate bool
	// Allow lists networks allowed although non-public.
	Allow []netip.Prefix
}

// nonPublic are the special-purpose ranges that netip's predicates do not
// name (RFC 6890 and successors).
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, broadcast
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("100::/64"),        // discard
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
}

// classify names why an address is not public, or returns "".
func classify(a netip.Addr) string {
	a = a.Unmap()
	switch {
	case a.IsLoopback():
		return "loopback"
	case a.IsUnspecified():
		return "unspecified"
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		return "link-local"
	case a.IsPrivate():
		return "private"
	case a.IsMulticast(), a.IsInterfaceLocalMulticast():
		return "multicast"
	case !a.IsGlobalUnicast():
		return "not global unicast"
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return "reserved"
		}
	}
	return ""
}

// CheckAddr returns nil if a call may reach a, else an error wrapping
// ErrRefusedTarget that says why.
func (g Guard) CheckAddr(a netip.Addr) error {
	a = a.WithZone("").Unmap()
	why := classify(a)
	if why == "" || g.AllowPrivate {
		return nil
	}
	for _, p := range g.Allow {
		if p.Contains(a) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s is a %s address (allow it with notify.allow_private_targets or notify.allowed_networks)", ErrRefusedTarget, a, why)
}

// control is a net.Dialer Control function: it runs after name resolution
// and before connecting, on the address about to be dialled.
func (g Guard) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot parse %q", ErrRefusedTarget, address)
	}
	return g.CheckAddr(ap.Addr())
}

// CheckURL checks an endpoint URL before it is stored: absolute https (http
// only to an allowed non-public address, as in tests and labs), no
// credentials, no fragment, and not a literal address the guard refuses.
// A host name is checked again, resolved, at each call.
func (g Guard) CheckURL(raw string) error {
	if len(raw) > 2048 {
		return errors.New("the URL is longer than 2048 characters")
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("%q is not an absolute URL like https://hooks.example.com/recourse", raw)
	}
	if u.User != nil {
		return errors.New("the URL must not carry credentials: calls are authenticated by their signature")
	}
	if u.Fragment != "" {
		return errors.New("the URL must not have a #fragment")
	}
	host := u.Hostname()
	var addr netip.Addr
	literal := false
	if a, err := netip.ParseAddr(host); err == nil {
		addr, literal = a, true
	} else if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		addr, literal = netip.MustParseAddr("127.0.0.1"), true
	}
	if literal {
		if err := g.CheckAddr(addr); err != nil {
			return err
		}
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if literal && classify(addr) != "" {
			return nil // an allowed internal target
		}
		return errors.New("the URL must be https:// (plain http is accepted only for an allowed internal address)")
	}
	return fmt.Errorf("the URL scheme %q is not https", u.Scheme)
}

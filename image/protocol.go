package image

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/thinblk/thinblk/block"
)

// ProtocolOpener opens a storage node named by a URL of its scheme (the whole
// URL is passed, e.g. "nbd+unix:///disk?socket=/run/s"). The node is
// read-only when readOnly is set.
type ProtocolOpener func(url string, readOnly bool) (block.Driver, error)

var (
	protocolsMu sync.RWMutex
	protocols   = map[string]ProtocolOpener{}
)

// RegisterProtocol makes names of the form "scheme://..." open through open.
// Protocol packages (protocol/nbd) call it from init. It panics on a
// duplicate scheme (a programming error at init time).
func RegisterProtocol(scheme string, open ProtocolOpener) {
	protocolsMu.Lock()
	defer protocolsMu.Unlock()
	scheme = strings.ToLower(scheme)
	if _, dup := protocols[scheme]; dup {
		panic("image: protocol registered twice: " + scheme)
	}
	protocols[scheme] = open
}

// Protocols returns the registered URL schemes, sorted.
func Protocols() []string {
	protocolsMu.RLock()
	defer protocolsMu.RUnlock()
	out := make([]string, 0, len(protocols))
	for s := range protocols {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// IsURL reports whether name is a URL ("scheme://...") rather than a path.
func IsURL(name string) bool {
	scheme, _, ok := strings.Cut(name, "://")
	if !ok || scheme == "" {
		return false
	}
	for _, c := range scheme {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// openURL opens name through its scheme's registered opener.
func openURL(name string, readOnly bool) (block.Driver, error) {
	scheme, _, _ := strings.Cut(name, "://")
	protocolsMu.RLock()
	open, ok := protocols[strings.ToLower(scheme)]
	protocolsMu.RUnlock()
	if !ok {
		known := Protocols()
		list := "none"
		if len(known) > 0 {
			list = strings.Join(known, ", ")
		}
		return nil, fmt.Errorf("%w: unknown protocol %q (known: %s)", block.ErrNotSupported, scheme, list)
	}
	return open(name, readOnly)
}

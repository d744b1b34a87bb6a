// Package errinject is a filter that fails chosen requests: by operation,
// byte range and flags, after letting some through, a limited number of
// times, with a chosen error, before or after carrying the request out. It
// makes fallback and error paths run in tests (like nbdkit's error filter
// and pebble's errorfs).
//
// Requests that no rule matches pass through unchanged; the node implements
// block.Wrapper and forwards block.Backed.
package errinject

// Package count is a filter that counts the requests passing through a node:
// calls, bytes and errors per operation, and how many carried each flag. It
// can also record every request, for tests that check what a tool sent
// (for example that a copy skipped zeros, or split requests at MaxTransfer).
//
// Everything else passes through unchanged; the node implements
// block.Wrapper and forwards block.Backed.
package count

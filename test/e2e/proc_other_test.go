//go:build !linux

package e2e

import "os/exec"

// dieWithParent does nothing off Linux: children are stopped only by
// t.Cleanup there.
func dieWithParent(cmd *exec.Cmd) {}

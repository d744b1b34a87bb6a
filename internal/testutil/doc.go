// Package testutil holds the helpers every thinblk test shares: peer-tool
// checks, the thinblk binary built once per test process, running commands,
// random seeds, root checks and loop devices.
//
// # Peers and CI
//
// Interop tests need peer tools (qemu-img, qemu-io, nbdkit, ...). [NeedTool]
// skips a test when a tool is missing — except when the environment has
// CI=true, where a missing peer is a failure: CI must prove interop, not
// silently skip it. [NeedRoot] follows the same rule.
//
// # Seeds
//
// Random tests take their seed from [Seed]: THINBLK_SEED when set, else the
// clock. The seed is always logged so a failure can be replayed with
// THINBLK_SEED=N go test -run ...
package testutil

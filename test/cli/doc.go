// Package cli holds thinblk's command-line tests: they build the thinblk
// binary (internal/testutil.Thinblk), run its verbs the way a user does, and
// compare what they print and do with the peers (qemu-img, qemu-io) on the
// same images. The package has no non-test code besides this comment.
package cli

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/thinblk/thinblk/internal/testutil"
)

// guestEnv is what every guest boot shares: the kernel, the initramfs built
// for it and the QEMU binary.
type guestEnv struct {
	kernel guestKernel
	initrd string
	qemu   string
}

var (
	envOnce sync.Once
	env     guestEnv
	envErr  error // a missing tool or kernel: skip (fail under CI=true)
	envFail error // a broken build: always fail
)

// e2eTools are the programs the harness needs on the host.
var e2eTools = []string{"qemu-system-x86_64", "busybox", "modprobe", "ldd", "mke2fs", "filefrag", "fstrim",
	"sg_vpd", "sg_get_lba_status", "sg_write_same", "sg_sync", "qemu-img", "du"}

// missingTools returns the e2e tools and kernel parts not on this host.
func missingTools() []string {
	var missing []string
	for _, p := range e2eTools {
		if _, err := lookProgram(p); err != nil {
			missing = append(missing, p)
		}
	}
	if _, err := findKernel(); err != nil {
		missing = append(missing, "a /boot kernel with modules")
	}
	if _, err := os.Stat("/usr/lib/x86_64-linux-gnu/qemu/block-iscsi.so"); err != nil {
		missing = append(missing, "qemu-block-extra (iscsi://)")
	}
	return missing
}

// installTools runs scripts/install-e2e.sh when something is missing and we
// are root (the script installs Debian's packages).
func installTools() error {
	if len(missingTools()) == 0 || os.Geteuid() != 0 {
		return nil
	}
	root, err := testutil.ModuleRoot()
	if err != nil {
		return err
	}
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "install-e2e.sh"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("scripts/install-e2e.sh: %v\n%s", err, out)
	}
	return nil
}

// needGuestTools returns the shared guest environment, building the
// initramfs on first use. A missing tool skips the test (fails it under
// CI=true); a failed build fails it.
func needGuestTools(t *testing.T) guestEnv {
	t.Helper()
	envOnce.Do(func() {
		if err := installTools(); err != nil {
			envFail = err
			return
		}
		if m := missingTools(); len(m) > 0 {
			envErr = fmt.Errorf("missing %v (run scripts/install-e2e.sh as root)", m)
			return
		}
		k, err := findKernel()
		if err != nil {
			envErr = err
			return
		}
		qemu, _ := lookProgram("qemu-system-x86_64")
		initrd, err := buildInitramfs(workDir, k)
		if err != nil {
			envFail = fmt.Errorf("building the initramfs: %w", err)
			return
		}
		env = guestEnv{kernel: k, initrd: initrd, qemu: qemu}
	})
	if envFail != nil {
		t.Fatal(envFail)
	}
	if envErr != nil {
		if testutil.InCI() {
			t.Fatalf("CI=true: %v", envErr)
		}
		t.Skip(envErr)
	}
	return env
}

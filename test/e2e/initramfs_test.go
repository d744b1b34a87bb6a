package e2e

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// guestInit is the guest's /init: see the comment at its top.
//
//go:embed testdata/init.sh
var guestInit []byte

// guestKernel is the kernel a guest boots: its image and the version that
// names its module tree under /lib/modules.
type guestKernel struct {
	Version string // e.g. 6.1.0-56-amd64
	Image   string // /boot/vmlinuz-<Version>
}

// guestModules are the modules the guest needs, as modprobe names them;
// their dependencies are added in load order.
var guestModules = []string{"virtio_pci", "virtio_blk", "virtio_scsi", "sd_mod", "sg", "ext4"}

// guestPrograms are the host programs copied into the guest's /usr/sbin
// (ahead of busybox's applets of the same names in the guest's PATH), with
// the shared libraries ldd names for them.
var guestPrograms = []string{"mke2fs", "filefrag", "fstrim", "sg_vpd", "sg_get_lba_status", "sg_write_same", "sg_sync"}

// findKernel returns the newest kernel in /boot whose module tree is
// installed (modules.dep present).
func findKernel() (guestKernel, error) {
	images, _ := filepath.Glob("/boot/vmlinuz-*")
	var found []guestKernel
	for _, img := range images {
		v := strings.TrimPrefix(filepath.Base(img), "vmlinuz-")
		if _, err := os.Stat(filepath.Join("/lib/modules", v, "modules.dep")); err == nil {
			found = append(found, guestKernel{Version: v, Image: img})
		}
	}
	if len(found) == 0 {
		return guestKernel{}, errors.New("no /boot/vmlinuz-* with /lib/modules/<version>/modules.dep (install linux-image-amd64)")
	}
	slices.SortFunc(found, func(a, b guestKernel) int { return compareVersions(a.Version, b.Version) })
	return found[len(found)-1], nil
}

// compareVersions orders kernel versions by their numeric runs, then as
// strings: 6.1.0-56 < 6.1.0-100.
func compareVersions(a, b string) int {
	split := func(s string) []string {
		return strings.FieldsFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	}
	na, nb := split(a), split(b)
	for i := 0; i < len(na) && i < len(nb); i++ {
		x, _ := strconv.Atoi(na[i])
		y, _ := strconv.Atoi(nb[i])
		if x != y {
			return x - y
		}
	}
	if len(na) != len(nb) {
		return len(na) - len(nb)
	}
	return strings.Compare(a, b)
}

// moduleFiles returns the module files that load mods on kernel version,
// dependencies first, each once, from `modprobe -S VERSION --show-depends`.
// Built-in modules are left out.
func moduleFiles(version string, mods []string) ([]string, error) {
	var files []string
	for _, m := range mods {
		out, err := exec.Command("modprobe", "-S", version, "--show-depends", m).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("modprobe -S %s --show-depends %s: %v: %s", version, m, err, bytes.TrimSpace(out))
		}
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 || f[0] != "insmod" {
				continue // "builtin MOD" or blank
			}
			if !slices.Contains(files, f[1]) {
				files = append(files, f[1])
			}
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("modprobe found no module files for %v on %s", mods, version)
	}
	return files, nil
}

// readModule returns a module's plain ELF content, decompressing .ko.gz,
// .ko.xz and .ko.zst (busybox insmod loads only plain modules), and the
// plain file name.
func readModule(file string) (name string, data []byte, err error) {
	base := filepath.Base(file)
	switch {
	case strings.HasSuffix(base, ".ko"):
		data, err = os.ReadFile(file)
		return base, data, err
	case strings.HasSuffix(base, ".ko.gz"):
		f, err := os.Open(file)
		if err != nil {
			return "", nil, err
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			return "", nil, fmt.Errorf("%s: %w", file, err)
		}
		data, err = io.ReadAll(zr)
		return strings.TrimSuffix(base, ".gz"), data, err
	case strings.HasSuffix(base, ".ko.xz"), strings.HasSuffix(base, ".ko.zst"):
		tool := "xz"
		if strings.HasSuffix(base, ".zst") {
			tool = "zstd"
		}
		data, err = exec.Command(tool, "-dc", file).Output()
		if err != nil {
			return "", nil, fmt.Errorf("%s -dc %s: %w", tool, file, err)
		}
		return base[:strings.LastIndex(base, ".ko")+3], data, nil
	}
	return "", nil, fmt.Errorf("%s: unknown module file type", file)
}

// sharedLibraries returns the absolute paths ldd prints for program (the
// dynamic loader included), or nil for a static program.
func sharedLibraries(program string) ([]string, error) {
	out, err := exec.Command("ldd", program).CombinedOutput()
	if err != nil {
		if bytes.Contains(out, []byte("not a dynamic executable")) {
			return nil, nil
		}
		return nil, fmt.Errorf("ldd %s: %v: %s", program, err, bytes.TrimSpace(out))
	}
	var libs []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "not found") {
			return nil, fmt.Errorf("ldd %s: %s", program, strings.TrimSpace(line))
		}
		for _, f := range strings.Fields(line) {
			if strings.HasPrefix(f, "/") {
				libs = append(libs, f)
				break
			}
		}
	}
	return libs, nil
}

// lookProgram finds a program on PATH or in the sbin folders (which a
// non-root PATH may lack).
func lookProgram(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("program %s not found", name)
}

// initramfs collects the members of a guest's initramfs and creates each
// member's parent folders first, as the kernel's unpacker needs.
type initramfs struct {
	w    *cpioWriter
	have map[string]bool
}

func (r *initramfs) dir(name string) {
	name = strings.TrimPrefix(path.Clean("/"+name), "/")
	if name == "" || r.have[name] {
		return
	}
	r.dir(path.Dir(name))
	r.have[name] = true
	r.w.Dir(name)
}

func (r *initramfs) file(name string, perm uint32, data []byte) {
	name = strings.TrimPrefix(path.Clean("/"+name), "/")
	if r.have[name] {
		return
	}
	r.dir(path.Dir(name))
	r.have[name] = true
	r.w.File(name, perm, data)
}

// hostFile copies a host file's content (symlinks followed) to name.
func (r *initramfs) hostFile(name, hostPath string) error {
	data, err := os.ReadFile(hostPath)
	if err != nil {
		return err
	}
	st, err := os.Stat(hostPath)
	if err != nil {
		return err
	}
	r.file(name, uint32(st.Mode().Perm()), data)
	return nil
}

// program copies a dynamic or static host program to guestPath and its
// libraries to their host paths.
func (r *initramfs) program(guestPath, hostPath string) error {
	if err := r.hostFile(guestPath, hostPath); err != nil {
		return err
	}
	libs, err := sharedLibraries(hostPath)
	if err != nil {
		return err
	}
	for _, lib := range libs {
		if err := r.hostFile(lib, lib); err != nil {
			return err
		}
	}
	return nil
}

// buildInitramfs writes the guest's initramfs for kernel k into dir and
// returns its path. See the package comment for its contents.
func buildInitramfs(dir string, k guestKernel) (string, error) {
	out := filepath.Join(dir, "initramfs.cpio")
	f, err := os.Create(out)
	if err != nil {
		return "", err
	}
	defer f.Close()
	r := &initramfs{w: newCPIOWriter(f), have: map[string]bool{}}
	for _, d := range []string{"bin", "dev", "proc", "sys", "mnt", "tmp", "etc", "root", "usr/sbin", "lib/modules"} {
		r.dir(d)
	}
	r.w.CharDev("dev/console", 5, 1)
	r.have["dev/console"] = true
	r.w.Symlink("etc/mtab", "/proc/self/mounts")
	r.have["etc/mtab"] = true
	r.file("init", 0o755, guestInit)

	busybox, err := lookProgram("busybox")
	if err != nil {
		return "", fmt.Errorf("%w (install busybox-static)", err)
	}
	if err := r.program("bin/busybox", busybox); err != nil {
		return "", err
	}
	for _, p := range guestPrograms {
		host, err := lookProgram(p)
		if err != nil {
			return "", err
		}
		if err := r.program("usr/sbin/"+p, host); err != nil {
			return "", err
		}
	}
	if _, err := os.Stat("/etc/mke2fs.conf"); err == nil {
		if err := r.hostFile("etc/mke2fs.conf", "/etc/mke2fs.conf"); err != nil {
			return "", err
		}
	}

	mods, err := moduleFiles(k.Version, guestModules)
	if err != nil {
		return "", err
	}
	var list bytes.Buffer
	for _, m := range mods {
		name, data, err := readModule(m)
		if err != nil {
			return "", err
		}
		r.file("lib/modules/"+name, 0o644, data)
		fmt.Fprintln(&list, name)
	}
	r.file("modules.list", 0o644, list.Bytes())
	if err := r.w.Close(); err != nil {
		return "", err
	}
	return out, f.Close()
}

// TestInitramfs builds the guest's initramfs and checks that it holds what
// the guest's /init uses, with module dependencies before their users.
func TestInitramfs(t *testing.T) {
	env := needGuestTools(t)
	list := cpioList(t, env.initrd)
	if list == nil {
		t.Skip("cpio not installed: cannot list the archive")
	}
	for _, want := range []string{"init", "dev/console", "bin/busybox", "modules.list", "usr/sbin/mke2fs",
		"usr/sbin/sg_get_lba_status", "lib64/ld-linux-x86-64.so.2", "lib/modules/ext4.ko", "lib/modules/virtio_scsi.ko"} {
		if !slices.Contains(list, want) {
			t.Errorf("initramfs lacks %s", want)
		}
	}
	mods, err := moduleFiles(env.kernel.Version, guestModules)
	if err != nil {
		t.Fatal(err)
	}
	order := func(name string) int {
		return slices.IndexFunc(mods, func(m string) bool { return strings.HasPrefix(filepath.Base(m), name+".ko") })
	}
	for _, pair := range [][2]string{{"scsi_mod", "sd_mod"}, {"virtio", "virtio_pci"}, {"jbd2", "ext4"}, {"scsi_mod", "virtio_scsi"}} {
		dep, user := order(pair[0]), order(pair[1])
		if dep < 0 || user < 0 || dep > user {
			t.Errorf("module %s (at %d) must load before %s (at %d): %v", pair[0], dep, pair[1], user, mods)
		}
	}
}

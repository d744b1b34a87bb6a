package testutil

import (
	"os"
	"testing"
)

func TestSeedFromEnv(t *testing.T) {
	t.Setenv("THINBLK_SEED", "12345")
	if got := Seed(t); got != 12345 {
		t.Fatalf("Seed = %d, want 12345", got)
	}
}

func TestRunExitCode(t *testing.T) {
	NeedTool(t, "sh")
	out, errs, code := Run(t, "sh", "-c", "echo out; echo err >&2; exit 3")
	if out != "out\n" || errs != "err\n" || code != 3 {
		t.Fatalf("Run = %q %q %d, want \"out\\n\" \"err\\n\" 3", out, errs, code)
	}
}

func TestModuleRoot(t *testing.T) {
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root + "/go.mod"); err != nil {
		t.Fatalf("ModuleRoot %s has no go.mod: %v", root, err)
	}
}

func TestLoopDevice(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "loop")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	dev := LoopDevice(t, f.Name())
	st, err := os.Stat(dev)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&os.ModeDevice == 0 {
		t.Fatalf("%s is not a device: %v", dev, st.Mode())
	}
}

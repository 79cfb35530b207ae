package testplugins

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// Python is the interpreter the Python plugin tests run: Debian's, whose
// python3-grpcio, python3-protobuf, python3-cryptography and
// python3-sklearn scripts/install-test-deps.sh installs. A python3 earlier
// on PATH (pyenv, a virtualenv) may not see those packages.
const Python = "/usr/bin/python3"

var (
	pyOnce    sync.Once
	pyMissing map[string]bool
)

// RequirePython skips the test, loudly, unless Python can import the
// kit's modules (grpc, google.protobuf, cryptography) and extra; with
// CI=true it fails instead, so that CI never skips these tests silently.
func RequirePython(t testing.TB, extra ...string) {
	t.Helper()
	pyOnce.Do(func() {
		pyMissing = map[string]bool{}
		for _, mod := range []string{"grpc", "google.protobuf", "cryptography", "sklearn"} {
			if err := exec.Command(Python, "-c", "import "+mod).Run(); err != nil {
				pyMissing[mod] = true
			}
		}
	})
	var missing []string
	if _, err := os.Stat(Python); err != nil {
		missing = append(missing, Python)
	}
	for _, mod := range append([]string{"grpc", "google.protobuf", "cryptography"}, extra...) {
		if pyMissing[mod] {
			missing = append(missing, mod)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "Python plugin test needs " + strings.Join(missing, ", ") +
		": run scripts/install-test-deps.sh (Debian python3-grpcio python3-protobuf python3-cryptography python3-sklearn)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip("SKIPPED: " + msg)
}

// RepoRoot is the repository's root directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// PythonTestModel is the command of the Python test plugin in mode (see
// plugins/python/testdata/testmodel.py): ok, crash-import, garbage,
// silent or unhealthy.
func PythonTestModel(mode string) []string {
	return []string{Python, filepath.Join(RepoRoot(), "plugins", "python", "testdata", "testmodel.py"), mode}
}

// PythonExample is the command of the example scikit-learn model
// (examples/python-model).
func PythonExample() []string {
	return []string{Python, filepath.Join(RepoRoot(), "examples", "python-model", "model.py")}
}

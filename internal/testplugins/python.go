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
	pyMu     sync.Mutex
	pyProbed = map[string]bool{} // module → importable
)

// RequirePython skips the test, loudly, unless Python can import the
// kit's modules (grpc, google.protobuf, cryptography) and extra; with
// CI=true it fails instead, so that CI never skips these tests silently.
func RequirePython(t testing.TB, extra ...string) {
	t.Helper()
	mods := append([]string{"grpc", "google.protobuf", "cryptography"}, extra...)
	var missing []string
	if _, err := os.Stat(Python); err != nil {
		missing = append(missing, Python)
	} else {
		pyMu.Lock()
		var todo []string
		for _, m := range mods {
			if _, ok := pyProbed[m]; !ok {
				todo = append(todo, m)
			}
		}
		if len(todo) > 0 {
			// find_spec locates a module without importing it (scikit-learn
			// takes seconds to import).
			out, err := exec.Command(Python, append([]string{"-c",
				"import importlib.util, sys\nfor m in sys.argv[1:]:\n    print(m, importlib.util.find_spec(m) is not None)"}, todo...)...).Output()
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				if m, ok, found := strings.Cut(line, " "); found && err == nil {
					pyProbed[m] = ok == "True"
				}
			}
		}
		for _, m := range mods {
			if !pyProbed[m] {
				missing = append(missing, m)
			}
		}
		pyMu.Unlock()
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

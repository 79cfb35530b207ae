"""A Python model plugin for healproxy's tests: one script, one mode per
failure it plays (the first argument).

  ok            serves; predict answers per input (see below)
  crash-import  dies at import (ModuleNotFoundError) before any handshake
  garbage       prints a line to stdout before serve (breaks the handshake)
  silent        never prints the handshake; sleeps
  unhealthy     serves, but health() says the weights are missing

Inputs of mode ok:
  "sleep:S"  sleeps S seconds, then answers (a hung predict)
  "bad"      raises BadInput (healproxy answers 400)
  "boom"     raises RuntimeError (a model failure)
  "env"      answers one label per environment variable, "NAME=VALUE"
  "spawn"    starts a child process (sleep 300) and answers "pid:N"
  "print"    prints to stdout (must not reach the handshake pipe), answers
  "deadline" answers "remaining:S", the call's time_remaining()
  "exit"     the process exits at once with status 3 (a crash mid-call)
  other      "pos" when the text has "good", else "neg"
"""

import os
import subprocess
import sys
import time

mode = sys.argv[1] if len(sys.argv) > 1 else "ok"

if mode == "crash-import":
    import healproxy_no_such_module  # noqa: F401  (the crash is the point)

if mode == "garbage":
    print("loading weights from /models ... done")
    sys.stdout.flush()

if mode == "silent":
    time.sleep(600)
    sys.exit(0)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import healproxy_plugin  # noqa: E402


class TestModel:
    def info(self):
        return {"name": "testmodel", "version": "1", "labels": ["pos", "neg"]}

    def health(self):
        if mode == "unhealthy":
            return "weights missing"
        return None

    def predict(self, inputs, call):
        out = []
        for text in inputs:
            if text.startswith("sleep:"):
                deadline = time.monotonic() + float(text[len("sleep:"):])
                while time.monotonic() < deadline:
                    time.sleep(0.01)
                out.append([("pos", 1.0)])
            elif text == "bad":
                raise healproxy_plugin.BadInput("inputs must not be 'bad'")
            elif text == "boom":
                raise RuntimeError("the model fell over")
            elif text == "env":
                out.append([("%s=%s" % kv, 0.0) for kv in sorted(os.environ.items())])
            elif text == "spawn":
                child = subprocess.Popen(["sleep", "300"])
                out.append([("pid:%d" % child.pid, 1.0)])
            elif text == "deadline":
                out.append([("remaining:%.3f" % call.time_remaining(), 1.0)])
            elif text == "exit":
                sys.stderr.write("model: fatal error, exiting\n")
                sys.stderr.flush()
                os._exit(3)
            elif text == "print":
                print("a model that prints")
                out.append([("pos", 1.0)])
            else:
                good = 1.0 if "good" in text else 0.0
                out.append({"pos": good, "neg": 1.0 - good})
        return out


healproxy_plugin.serve(TestModel())

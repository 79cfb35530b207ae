"""The plugin side of go-plugin's gRPC protocol for healproxy's Model service.

What healproxy expects of a plugin process (README, "Plugins in Python"):

 1. The magic cookie HEALPROXY_MODEL_PLUGIN in the environment; without it
    the program was started by hand, and says so on stderr (exit 1).
 2. One handshake line on stdout, flushed:
    CORE|APP|NETWORK|ADDR|grpc[|CERT], here 1|1|unix|<socket>|grpc|<cert>.
 3. On that address: healproxy.model.v1.Model, grpc.health.v1.Health
    ("plugin" is SERVING), plugin.GRPCController/Shutdown (exit promptly)
    and plugin.GRPCStdio/StreamStdio (kept open, nothing sent).
 4. Nothing else on stdout, ever.
"""

import inspect
import os
import signal
import sys
import threading
import time
import traceback

# The only values of healproxy's plugins.Handshake a plugin must know.
MAGIC_COOKIE_KEY = "HEALPROXY_MODEL_PLUGIN"
MAGIC_COOKIE_VALUE = "4f1c2b7e-healproxy-model-v1"
APP_PROTOCOL_VERSION = 1
CORE_PROTOCOL_VERSION = 1  # go-plugin's

# How many calls the plugin runs at once. A call beyond waits for a worker;
# a predict that hangs holds one until healproxy kills the process.
MAX_WORKERS = 16
# How often the plugin checks that healproxy, its parent, is still there.
PARENT_POLL_SECONDS = 0.5


class BadInput(ValueError):
    """Raise from predict for inputs the model cannot take.

    healproxy answers the client 400 with the message and does not count
    the call against the model's health. Any other exception is a failure.
    """


class Call:
    """The call a predict runs for, passed as predict's second argument
    when predict takes one."""

    def __init__(self, context):
        self._context = context

    def time_remaining(self):
        """Seconds until healproxy gives up on the call (the model's
        timeout), or None without a deadline."""
        return self._context.time_remaining()

    def cancelled(self):
        """True once healproxy has given up on the call (deadline passed,
        client gone, or healproxy shutting the plugin down)."""
        return not self._context.is_active()


def _die(msg, code=1):
    sys.stderr.write("healproxy_plugin: " + msg + "\n")
    sys.stderr.flush()
    os._exit(code)


def _check_cookie():
    if os.environ.get(MAGIC_COOKIE_KEY) != MAGIC_COOKIE_VALUE:
        _die(
            "this program is a healproxy model plugin, not meant to be run by hand: "
            "healproxy starts it (a model block's command = [...]). "
            "To try it, run: healproxy plugin-check -- " + " ".join([sys.executable] + sys.argv)
        )
    versions = os.environ.get("PLUGIN_PROTOCOL_VERSIONS", "")
    if versions and str(APP_PROTOCOL_VERSION) not in versions.split(","):
        _die(
            "healproxy speaks plugin protocol version(s) %s; this kit speaks %d: "
            "use the plugin kit shipped with that healproxy" % (versions, APP_PROTOCOL_VERSION)
        )


def _label_scores(pb, pred, i):
    """Turns one input's prediction into LabelScores, best first."""
    if isinstance(pred, dict):
        pred = pred.items() if "label" not in pred else [pred]
    out = []
    for item in pred:
        if isinstance(item, dict):
            label, score = item["label"], item["score"]
        else:
            label, score = item
        out.append(pb.LabelScore(label=str(label), score=float(score)))
    out.sort(key=lambda s: s.score, reverse=True)
    return out


def _wants_call(fn):
    try:
        params = [
            p for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        return False
    return len(params) >= 2


def serve(model):
    """Serves model as a healproxy model plugin; never returns.

    model needs predict(inputs) (or predict(inputs, call)) and info();
    health() is optional. See the package documentation.
    """
    # Read before the handshake: once healproxy has the handshake it may go
    # away at any moment, and an orphan's parent is no longer healproxy.
    parent = os.getppid()
    _check_cookie()
    for method in ("predict", "info"):
        if not callable(getattr(model, method, None)):
            _die("the model has no %s() method; a model needs predict(inputs) and info()" % method)
    try:
        import grpc

        from healproxy_plugin import _tls
        from healproxy_plugin._proto import (
            grpc_controller_pb2,
            grpc_controller_pb2_grpc,
            grpc_stdio_pb2_grpc,
            health_pb2,
            health_pb2_grpc,
            model_pb2,
            model_pb2_grpc,
        )
    except ImportError as e:
        _die(
            "cannot import %s: install Debian's python3-grpcio, python3-protobuf and "
            "python3-cryptography (or pip's grpcio, protobuf, cryptography)" % e.name
        )
    from concurrent import futures

    # Ctrl-C in healproxy's terminal is for healproxy, which then shuts the
    # plugin down (go-plugin's Go plugins do the same).
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    stop = threading.Event()
    pass_call = _wants_call(model.predict)
    has_health = callable(getattr(model, "health", None))

    class ModelServicer(model_pb2_grpc.ModelServicer):
        def Predict(self, request, context):
            if not context.is_active():  # waited for a worker past the deadline
                context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed before predict started")
            inputs = list(request.inputs)
            try:
                preds = model.predict(inputs, Call(context)) if pass_call else model.predict(inputs)
                preds = list(preds)
                if len(preds) != len(inputs):
                    raise ValueError("predict returned %d predictions for %d inputs" % (len(preds), len(inputs)))
                resp = model_pb2.PredictResponse(predictions=[
                    model_pb2.Prediction(scores=_label_scores(model_pb2, p, i)) for i, p in enumerate(preds)
                ])
            except BadInput as e:
                code, msg = grpc.StatusCode.INVALID_ARGUMENT, str(e) or "bad input"
            except Exception as e:
                traceback.print_exc(file=sys.stderr)
                code, msg = grpc.StatusCode.UNKNOWN, "%s: %s" % (type(e).__name__, e)
            else:
                if not context.is_active():
                    code, msg = grpc.StatusCode.DEADLINE_EXCEEDED, "predict finished after the deadline"
                else:
                    return resp
            context.abort(code, msg)

        def Info(self, request, context):
            try:
                info = model.info()
                if not isinstance(info, dict):
                    name, version, labels = info
                    info = {"name": name, "version": version, "labels": labels}
                return model_pb2.InfoResponse(
                    name=str(info.get("name", "")),
                    version=str(info.get("version", "")),
                    labels=[str(label) for label in info.get("labels", [])],
                )
            except Exception as e:
                traceback.print_exc(file=sys.stderr)
                msg = "%s: %s" % (type(e).__name__, e)
            context.abort(grpc.StatusCode.UNKNOWN, msg)

        def Health(self, request, context):
            if not has_health:
                return model_pb2.HealthResponse(ok=True)
            try:
                res = model.health()
            except Exception as e:
                return model_pb2.HealthResponse(ok=False, message="%s: %s" % (type(e).__name__, e))
            if res is None or res is True:
                return model_pb2.HealthResponse(ok=True)
            if res is False:
                return model_pb2.HealthResponse(ok=False, message="the model reports it is not healthy")
            return model_pb2.HealthResponse(ok=False, message=str(res))

    class HealthServicer(health_pb2_grpc.HealthServicer):
        def Check(self, request, context):
            if request.service not in ("", "plugin"):
                context.abort(grpc.StatusCode.NOT_FOUND, "unknown service %r" % request.service)
            return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)

    class ControllerServicer(grpc_controller_pb2_grpc.GRPCControllerServicer):
        def Shutdown(self, request, context):
            stop.set()
            return grpc_controller_pb2.Empty()

    class StdioServicer(grpc_stdio_pb2_grpc.GRPCStdioServicer):
        def StreamStdio(self, request, context):
            while not stop.wait(1.0) and context.is_active():
                pass
            return iter(())

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=MAX_WORKERS))
    model_pb2_grpc.add_ModelServicer_to_server(ModelServicer(), server)
    health_pb2_grpc.add_HealthServicer_to_server(HealthServicer(), server)
    grpc_controller_pb2_grpc.add_GRPCControllerServicer_to_server(ControllerServicer(), server)
    grpc_stdio_pb2_grpc.add_GRPCStdioServicer_to_server(StdioServicer(), server)

    creds, cert_field = None, ""
    client_pem = os.environ.get("PLUGIN_CLIENT_CERT")
    if client_pem:
        cert_pem, key_pem, cert_field = _tls.self_signed()
        creds = grpc.ssl_server_credentials(
            [(key_pem, cert_pem)], root_certificates=client_pem.encode(), require_client_auth=True
        )

    def bind(target):
        try:
            return server.add_secure_port(target, creds) if creds else server.add_insecure_port(target)
        except RuntimeError:
            return 0

    sock_dir = os.environ.get("PLUGIN_UNIX_SOCKET_DIR")
    if sock_dir:
        network = "unix"
        addr = os.path.join(sock_dir, "plugin%d.sock" % os.getpid())
        if not bind("unix:" + addr):
            _die("cannot listen on unix socket %s" % addr)
    else:
        network = "tcp"
        lo = int(os.environ.get("PLUGIN_MIN_PORT") or 0)
        hi = int(os.environ.get("PLUGIN_MAX_PORT") or 0)
        ports = range(lo, hi + 1) if 0 < lo <= hi else [0]
        port = 0
        for p in ports:
            port = bind("127.0.0.1:%d" % p)
            if port:
                break
        if not port:
            _die("cannot listen on 127.0.0.1 (ports %s)" % ("%d-%d" % (lo, hi) if lo else "any"))
        addr = "127.0.0.1:%d" % port
    server.start()

    line = "%d|%d|%s|%s|grpc" % (CORE_PROTOCOL_VERSION, APP_PROTOCOL_VERSION, network, addr)
    if cert_field:
        line += "|" + cert_field
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    # From here on stdout belongs to nobody: print() goes to stderr, which
    # healproxy logs under the model's key.
    sys.stdout = sys.stderr

    def watch_parent():
        while not stop.wait(PARENT_POLL_SECONDS):
            if os.getppid() != parent:
                sys.stderr.write("healproxy_plugin: healproxy (pid %d) went away; exiting\n" % parent)
                stop.set()
                return

    if parent > 1:
        threading.Thread(target=watch_parent, name="healproxy-parent-watch", daemon=True).start()

    stop.wait()
    # Let the Shutdown answer go out, but do not wait for calls in progress:
    # a hung predict must not keep the process alive.
    server.stop(grace=None).wait(0.2)
    sys.stderr.flush()
    os._exit(0)

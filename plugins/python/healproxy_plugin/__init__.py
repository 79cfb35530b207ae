"""healproxy_plugin: write a healproxy model plugin in Python.

A model is any object with two methods:

    class MyModel:
        def info(self):
            return {"name": "my-model", "version": "1", "labels": ["pos", "neg"]}

        def predict(self, inputs):
            # one list per input, each a list of (label, score) pairs
            # (or {"label": ..., "score": ...} dicts); the kit sorts them
            # best first.
            return [[("pos", 0.9), ("neg", 0.1)] for _ in inputs]

    if __name__ == "__main__":
        healproxy_plugin.serve(MyModel())

Optional:

  - ``health(self)``: return None (or True) when the model can serve;
    return a message string (or False, or raise) when it cannot.
  - ``predict(self, inputs, call)``: a second parameter receives a
    :class:`Call`, whose ``time_remaining()`` and ``cancelled()`` let a
    long prediction stop once healproxy has given up on it (the model's
    ``timeout``).

Raise :class:`BadInput` for inputs the model cannot take (healproxy answers
the client 400 without counting a failure); any other exception is a
failure of the model (README, "Plugins in Python").

``serve`` speaks the plugin side of hashicorp/go-plugin's protocol: it
refuses to run without healproxy's handshake cookie, listens on a Unix
socket in the directory healproxy gives (else on 127.0.0.1), with mutual
TLS when healproxy asks for it, prints the handshake line, and serves the
Model service, gRPC health, and go-plugin's shutdown call. It never
returns: the process exits when healproxy shuts it down or goes away.
Nothing may be written to stdout before ``serve``; afterwards
``sys.stdout`` is sent to stderr, which healproxy logs under the model's key.
"""

from healproxy_plugin._server import BadInput, Call, serve

__all__ = ["BadInput", "Call", "serve"]

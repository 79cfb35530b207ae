# Loads the Python example model: examples/python-model, scikit-learn
# trained at start on the repository's labelled crypto texts.
#
# Needs Debian's python3-sklearn, python3-grpcio, python3-protobuf and
# python3-cryptography (scripts/install-test-deps.sh installs them). Check
# the plugin first, then serve (from the repository root):
#   go run ./cmd/healproxy plugin-check -- /usr/bin/python3 examples/python-model/model.py
#   go run ./cmd/healproxy run -config examples/python-model.hcl
#   curl -s localhost:7860/models/sklearn_sentiment/predict -d '{"inputs": ["ETH breaking out, very bullish"]}'
#
# A relative command is resolved from this file's folder. The plugin sees
# only PATH, HOME, LANG, TZ and what env and inherit_env name.

listen = "127.0.0.1:7860"

model "sklearn_sentiment" {
  name    = "Crypto sentiment (scikit-learn, Python)"
  command = ["/usr/bin/python3", "./python-model/model.py"]
  timeout = "2s"
  # Where scikit-learn's joblib may put temporary files, and which GPUs a
  # model may use: examples of the two ways to give a plugin variables.
  env         = { JOBLIB_TEMP_FOLDER = "/tmp" }
  inherit_env = ["CUDA_VISIBLE_DEVICES"]
}

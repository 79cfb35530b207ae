# Loads a third-party model plugin: examples/model-plugin, a keyword model
# that labels text "fear" or "greed".
#
# Build the plugin first (from the repository root):
#   go build -o examples/model-plugin/model-plugin ./examples/model-plugin
# then serve:
#   go run ./cmd/healproxy run -config examples/model-plugin.hcl
#   curl -s localhost:7860/models/fear_greed/predict -d '{"inputs": ["panic selling, everyone is rekt"]}'
#
# A relative command is resolved from this file's folder.

listen = "127.0.0.1:7860"

model "fear_greed" {
  name    = "Fear & greed (example plugin)"
  command = ["./model-plugin/model-plugin"]
  timeout = "2s"
}

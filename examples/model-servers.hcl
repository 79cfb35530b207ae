# Models served over HTTP: healproxy in front of OpenAI-compatible model
# servers (README, "Model servers over HTTP"). Clients call
# POST /v1/chat/completions with "model": "chat" at healproxy's root.
#
#   healproxy validate -config examples/model-servers.hcl

listen = "127.0.0.1:7861"

model "chat" {
  # Two vLLM replicas: fail-over between them, one breaker each.
  endpoints      = ["http://127.0.0.1:8001/v1", "http://127.0.0.1:8002/v1"]
  upstream_model = "meta-llama/Llama-3.1-8B-Instruct"
  timeout        = "15s" # until the first token
  idle_timeout   = "20s" # the longest silence inside an answer
  fallback       = "local"
  prefill        = true
}

model "local" {
  # Ollama on this host.
  endpoints      = ["http://127.0.0.1:11434/v1"]
  upstream_model = "llama3.1:8b"
}

model "hosted" {
  endpoints      = ["https://api.openai.com/v1"]
  upstream_model = "gpt-4o"
  headers        = { Authorization = "Bearer ${env("OPENAI_API_KEY")}" }
  max_duration   = "5m"
  fallback       = "chat"
}

# A playground: two fake upstreams, one of which fails on a schedule.
# In three terminals, from the repository root:
#   go run ./examples/flaky-upstream -listen 127.0.0.1:9101 -name steady -fail 0
#   go run ./examples/flaky-upstream -listen 127.0.0.1:9102 -name flaky -ok 20s -fail 20s
#   go run ./cmd/healproxy -config examples/flaky.hcl
# then follow README.md's walkthrough, or open http://127.0.0.1:7860/.

listen = "127.0.0.1:7860"

health {
  error_threshold        = 3
  cooldown               = "10s"   # short, so you see recovery within a minute
  success_recovery_count = 2
}

# Both upstreams serve the same API: failures of "flaky" are hidden by
# retries on "steady", and "flaky" is cooled down and later recovers.
provider "prices" {
  name      = "Fake prices (steady + flaky)"
  upstreams = ["http://127.0.0.1:9101", "http://127.0.0.1:9102"]
  timeout   = "2s"
}

# Only the flaky one: here you see 500s pass through, then 503 cooldown
# answers with Retry-After, then half-open trials and recovery.
provider "flaky" {
  name      = "Fake prices (flaky only)"
  upstreams = ["http://127.0.0.1:9102"]
  timeout   = "2s"
}

model "sentiment" {
  name    = "Crypto sentiment"
  plugin  = "sentiment"
  timeout = "2s"
}

# healproxy's default configuration: public crypto market-data APIs and the
# built-in sentiment model. `go run ./cmd/healproxy` serves it on
# 127.0.0.1:7860; try
#   curl localhost:7860/providers/binance/ticker/price?symbol=BTCUSDT
#   curl localhost:7860/api/diagnostics/health
# See README.md for every setting.

listen = "127.0.0.1:7860"

# Global health defaults; each HEALTH_* environment variable overrides one.
health {
  error_threshold        = 3     # HEALTH_ERROR_THRESHOLD
  cooldown               = "60s" # HEALTH_COOLDOWN_SECONDS
  success_recovery_count = 2     # HEALTH_RECOVERY_COUNT
  auto_reinit            = true  # HEALTH_AUTO_REINIT
  reinit_cooldown        = "2m"  # HEALTH_REINIT_COOLDOWN
  max_concurrent_reinit  = 5
}

# Admin endpoints (self-heal) answer loopback clients only while no token
# is set; set HEALPROXY_ADMIN_TOKEN to require `Authorization: Bearer …`.
admin {
  token = env("HEALPROXY_ADMIN_TOKEN")
}

provider "coingecko" {
  name      = "CoinGecko API"
  upstreams = ["https://api.coingecko.com/api/v3"]
  timeout   = "10s"
  # The demo key is optional; an unset variable sends no header.
  headers = { "x-cg-demo-api-key" = env("COINGECKO_API_KEY") }
  # CoinGecko's free tier rate-limits hard: give it more room.
  health {
    error_threshold = 5
    cooldown        = "2m"
  }
}

# Binance publishes several equivalent API hosts: one provider, five
# upstreams, so a failing host is routed around.
provider "binance" {
  name = "Binance Spot API"
  upstreams = [
    "https://api.binance.com/api/v3",
    "https://api-gcp.binance.com/api/v3",
    "https://api1.binance.com/api/v3",
    "https://api2.binance.com/api/v3",
    "https://api3.binance.com/api/v3",
  ]
  timeout = "5s"
}

provider "kraken" {
  name      = "Kraken Public API"
  upstreams = ["https://api.kraken.com/0/public"]
  timeout   = "8s"
}

provider "coinbase" {
  name      = "Coinbase Exchange API"
  upstreams = ["https://api.exchange.coinbase.com"]
  timeout   = "8s"
  headers   = { "User-Agent" = "healproxy" } # Coinbase refuses requests without one
}

model "crypto_sent_0" {
  name     = "Crypto sentiment"
  plugin   = "sentiment"
  timeout  = "2s"
  fallback = "crypto_sent_1"
}

model "crypto_sent_1" {
  name    = "Crypto sentiment (standby)"
  plugin  = "sentiment"
  timeout = "2s"
}

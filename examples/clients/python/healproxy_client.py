#!/usr/bin/env python3
"""A small healproxy client with httpx: call a provider and a model, and
handle healproxy's 503 the way it asks to be handled.

healproxy answers 503 when every upstream of a provider is cooling down,
or a model (and its fallback) is unavailable. The body says why, and the
Retry-After header says when to come back, in whole seconds:

    HTTP/1.1 503 Service Unavailable
    Retry-After: 42
    {"status": "cooldown", "provider_id": "prices", "cooldown_remaining": 41.3, "error": "..."}
    {"status": "unavailable", "model_key": "m0", "error": "..."}

Usage:
    healproxy_client.py [--base http://127.0.0.1:7860] [--max-wait 30]
                        provider PROVIDER_ID PATH
                        model MODEL_KEY TEXT...

Each call prints one JSON line: what was asked, the status, and either the
answer or the 503's reason and Retry-After. With --max-wait N a 503 is
retried after Retry-After seconds as long as the total wait stays within
N seconds (default 0: no retry). Exit status 0 when the last answer was
2xx, 3 on a 503, 1 otherwise.

Needs httpx (Debian: python3-httpx).
"""

import argparse
import json
import sys
import time

import httpx


def retry_after(resp: httpx.Response) -> float:
    """Seconds to wait from Retry-After: delta-seconds, as healproxy sends
    it (an HTTP date, as some upstreams send, is read too)."""
    value = resp.headers.get("Retry-After")
    if value is None:
        return 1.0
    try:
        return max(0.0, float(int(value)))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return 1.0


def call(client: httpx.Client, method: str, path: str, max_wait: float, **kw) -> dict:
    """Send a request; on 503, wait Retry-After and try again while the
    total wait fits in max_wait. Returns a summary of the last answer."""
    waited = 0.0
    while True:
        resp = client.request(method, path, **kw)
        result = {"request": f"{method} {path}", "status": resp.status_code, "waited": waited}
        if resp.status_code != 503:
            try:
                result["body"] = resp.json()
            except ValueError:
                result["body"] = resp.text
            return result
        # healproxy's own 503: a JSON body with the reason.
        try:
            body = resp.json()
        except ValueError:
            body = {"error": resp.text}
        wait = retry_after(resp)
        result.update(
            {
                "reason": body.get("status"),  # "cooldown" (provider) or "unavailable" (model)
                "error": body.get("error"),
                "retry_after": wait,
                "cooldown_remaining": body.get("cooldown_remaining"),
            }
        )
        if waited + wait > max_wait:
            return result
        time.sleep(wait)
        waited += wait


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="http://127.0.0.1:7860", help="healproxy's base URL")
    ap.add_argument("--max-wait", type=float, default=0, help="seconds a 503 may be waited out in total")
    ap.add_argument("--timeout", type=float, default=10, help="seconds per request")
    ap.add_argument("calls", nargs="+", help="provider ID PATH | model KEY TEXT...")
    args = ap.parse_args(argv)

    code = 1
    with httpx.Client(base_url=args.base, timeout=args.timeout) as client:
        items = list(args.calls)
        while items:
            kind = items.pop(0)
            if kind == "provider" and len(items) >= 2:
                pid, path = items.pop(0), items.pop(0)
                result = call(client, "GET", f"/providers/{pid}/{path.lstrip('/')}", args.max_wait)
            elif kind == "model" and len(items) >= 2:
                key, text = items.pop(0), items.pop(0)
                result = call(client, "POST", f"/models/{key}/predict", args.max_wait, json={"inputs": text})
            else:
                ap.error(f"bad call near {kind!r}: want 'provider ID PATH' or 'model KEY TEXT'")
            print(json.dumps(result, sort_keys=True), flush=True)
            status = result["status"]
            code = 0 if 200 <= status < 300 else 3 if status == 503 else 1
    return code


if __name__ == "__main__":
    sys.exit(main())

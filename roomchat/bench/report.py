"""The figures of a run, as a table for people and a dict for `--json`."""

from __future__ import annotations

import os
from typing import Any

from roomchat.bench.runner import Outcome
from roomchat.bench.tally import percentile_ms

CLIENT_BOUND = 0.9  # a worker busier than this share of one core was the limit


def figures(o: Outcome) -> dict[str, Any]:
    t = o.tally
    listeners = o.plan.listeners - t.failed
    expected = listeners * o.published
    secs = o.deliver_seconds or o.publish_seconds
    hist = t.hist
    busiest = max(o.worker_busy, default=0.0)
    f: dict[str, Any] = {
        "transport": o.plan.transport,
        "listeners": o.plan.listeners,
        "rooms_per_listener": o.plan.rooms,
        "listeners_failed": t.failed,
        "stalled": o.plan.stalled,
        "stalled_dropped_as_lagged": o.stalled_lagged,
        "rate_asked": o.plan.rate,
        "publishers": o.plan.publishers,
        "published": o.published,
        "publish_rate": _div(o.published, o.publish_seconds),
        "deliveries_expected": expected,
        "deliveries_received": t.received,
        "lost": max(0, expected - t.received),
        "duplicated": t.duplicated,
        "out_of_order": t.out_of_order,
        "listeners_lagged": t.lagged,
        "listeners_ended_early": t.ended,
        "seconds": secs,
        "deliveries_per_second": _div(t.received, secs),
        "latency_ms": {
            "p50": percentile_ms(hist, 0.50),
            "p90": percentile_ms(hist, 0.90),
            "p99": percentile_ms(hist, 0.99),
            "max": percentile_ms(hist, 1.0),
        },
        "post_latency_ms": {
            "p50": percentile_ms(o.post_hist, 0.50),
            "p99": percentile_ms(o.post_hist, 0.99),
            "max": percentile_ms(o.post_hist, 1.0),
        },
        "backend": o.plan.backend,
        "pinned": o.plan.pin,
        "client_cpu_seconds": o.client_cpu,
        "client_cores": os.cpu_count(),
        "client_workers": len(o.worker_busy),
        "client_busiest_worker": busiest,
        "client_bound": busiest >= CLIENT_BOUND,
        "server_cpu_seconds": o.server_cpu,
        "server_cpu_us_per_delivery": (
            _div(o.server_cpu * 1e6, t.received) if o.server_cpu is not None else None
        ),
        "server_rss_mib": {
            "start": _mib(o.rss_start),
            "idle": _mib(o.rss_idle),
            "peak": _mib(o.rss_peak),
        },
        "server_rss_kib_per_idle_listener": (
            _div((o.rss_idle - o.rss_start) / 1024, o.plan.listeners + o.plan.stalled)
            if o.rss_idle is not None and o.rss_start is not None
            else None
        ),
        "server_rss_kib_per_subscription": (
            _div((o.rss_idle - o.rss_start) / 1024, o.plan.listeners * o.plan.rooms + o.plan.stalled)
            if o.rss_idle is not None and o.rss_start is not None
            else None
        ),
        "server_rss_growth_mib": _mib(o.rss_peak - o.rss_idle) if o.rss_peak and o.rss_idle else None,
        "presence_events": t.presence if o.plan.presence else None,
        "presence_events_per_listener": _div(t.presence, listeners) if o.plan.presence else None,
        "errors": o.errors,
    }
    return f


def _div(a: float, b: float) -> float | None:
    return a / b if b else None


def _mib(n: int | None) -> float | None:
    return n / 2**20 if n is not None else None


def _n(x: float | None, spec: str = ",.0f") -> str:
    return "-" if x is None else format(x, spec)


def rows(f: dict[str, Any]) -> list[tuple[str, str]]:
    lat = f["latency_ms"]
    post = f["post_latency_ms"]
    rss = f["server_rss_mib"]
    out = [
        ("transport", f"{f['transport']}, {f['listeners']:,} listeners"
         + (f" x {f['rooms_per_listener']} rooms" if f["rooms_per_listener"] > 1 else "")
         + (f" + {f['stalled']} stalled" if f["stalled"] else "")),
        ("published", f"{f['published']:,} messages at {_n(f['publish_rate'])}/s"
         + (f" (asked {f['rate_asked']:g}/s)" if f["rate_asked"] else " (flat out)")),
        ("deliveries", f"{f['deliveries_received']:,} of {f['deliveries_expected']:,} "
         f"(lost {f['lost']:,}, duplicated {f['duplicated']:,}, out of order {f['out_of_order']:,})"),
        ("posts", f"p50 {_n(post['p50'], '.2f')} ms  p99 {_n(post['p99'], '.2f')} ms  "
         f"max {_n(post['max'], '.2f')} ms from {f['publishers']} publisher(s)"
         + (f", backend {f['backend']}" if f["backend"] else "")),
        ("deliveries/s", _n(f["deliveries_per_second"])),
        ("latency ms", f"p50 {_n(lat['p50'], '.2f')}  p90 {_n(lat['p90'], '.2f')}  "
         f"p99 {_n(lat['p99'], '.2f')}  max {_n(lat['max'], '.2f')}"),
        ("client CPU", f"{f['client_cpu_seconds']:.2f} s over {f['client_workers']} worker(s), busiest at "
         f"{f['client_busiest_worker']:.0%} of a core" + ("  <- the client was the limit" if f["client_bound"]
                                                          else "")),
        ("server CPU", "-" if f["server_cpu_seconds"] is None else
         f"{f['server_cpu_seconds']:.2f} s, {_n(f['server_cpu_us_per_delivery'], '.2f')} µs per delivery"),
        ("server RSS", "-" if rss["idle"] is None else
         f"{rss['start']:.1f} MiB at start, {rss['idle']:.1f} idle with listeners, peak {rss['peak']:.1f}; "
         f"{_n(f['server_rss_kib_per_idle_listener'], '.1f')} KiB per idle listener"
         + (f", {_n(f['server_rss_kib_per_subscription'], '.1f')} KiB per subscription"
            if f["rooms_per_listener"] > 1 else "")),
    ]
    if f["presence_events"] is not None:
        out.append(("presence", f"{f['presence_events']:,} events, "
                    f"{_n(f['presence_events_per_listener'], '.2f')} per listener"))
    if f["listeners_failed"]:
        out.append(("failed to open", f"{f['listeners_failed']:,} streams"))
    if f["listeners_lagged"] or f["listeners_ended_early"]:
        out.append(("ended early", f"{f['listeners_lagged']} lagged, {f['listeners_ended_early']} other"))
    if f["stalled"]:
        out.append(("stalled", f"{f['stalled_dropped_as_lagged']} of {f['stalled']} dropped as lagged; "
                    f"server RSS grew {_n(f['server_rss_growth_mib'], '.1f')} MiB"))
    out += [("error", e) for e in f["errors"]]
    return out

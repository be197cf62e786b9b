"""Prometheus metrics of the gateway: an HTTP ``/metrics`` endpoint and/or a node_exporter textfile."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server, write_to_textfile

_BUCKETS_S = (50e-6, 100e-6, 200e-6, 500e-6, 1e-3, 2e-3, 5e-3, 10e-3, 20e-3, 50e-3, 0.1, 0.5)


class PrometheusExporter:
    def __init__(self, port: int | None = None, textfile: str | None = None, host: str = "127.0.0.1"):
        self.registry = CollectorRegistry()
        self.requests = Counter("roarm_gateway_requests_total", "Requests by type", ["type"], registry=self.registry)
        self.errors = Counter("roarm_gateway_errors_total", "Error replies by code", ["code"], registry=self.registry)
        self.misses = Counter("roarm_gateway_deadline_misses_total", "Infer requests answered with the safe action",
                              registry=self.registry)
        self.alerts = Counter("roarm_gateway_sla_alerts_total", "SLA alerts raised", registry=self.registry)
        self.latency = Histogram("roarm_gateway_infer_latency_seconds", "Infer request latency (receive to reply)",
                                 buckets=_BUCKETS_S, registry=self.registry)
        self.window = Gauge("roarm_gateway_window_latency_seconds", "Sliding-window latency percentiles",
                            ["quantile"], registry=self.registry)
        self.clients = Gauge("roarm_gateway_clients", "Open sessions", registry=self.registry)
        self.textfile = textfile
        self._request_children: dict[str, Any] = {}  # labels() looks the child up under a lock: once per type
        self._server = None
        self.enabled = port is not None or bool(textfile)
        """Neither an endpoint nor a textfile: nothing can read the registry, so the per-request calls return at once."""
        if port is not None:
            self._server, _ = start_http_server(port, addr=host, registry=self.registry)

    def count_request(self, kind: str) -> None:
        """``kind`` is one of the protocol's request types (decode refuses others): the cache stays that small."""
        if not self.enabled:
            return
        child = self._request_children.get(kind)
        if child is None:
            child = self._request_children[kind] = self.requests.labels(type=kind)
        child.inc()

    def count_error(self, code: str) -> None:
        if not self.enabled:
            return
        self.errors.labels(code=code).inc()

    def count_alert(self) -> None:
        if not self.enabled:
            return
        self.alerts.inc()

    def observe_infer(self, total_us: float, missed: bool) -> None:
        if not self.enabled:
            return
        self.latency.observe(total_us / 1e6)
        if missed:
            self.misses.inc()

    def update_from(self, stats: Any) -> None:
        if not self.enabled:
            return
        for name, value in stats.total.window().items():
            self.window.labels(quantile=name).set(value / 1e6)
        self.clients.set(stats.sessions)
        if self.textfile:
            write_to_textfile(self.textfile, self.registry)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

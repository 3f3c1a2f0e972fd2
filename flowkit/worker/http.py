"""The worker's HTTP server: health, a JSON description, and Prometheus metrics.

- ``GET /``: ``200 OK`` while the worker is registered with the server, ``503`` otherwise
  (a load balancer or Kubernetes probe takes the worker out while it reconnects).
- ``GET /worker``: JSON with the worker's id, agent name, load, memory, event-loop stalls,
  status, its jobs' provider usage, and active jobs (each with its usage so far).
- ``GET /metrics``: Prometheus text: the worker's load, memory, event-loop stalls and job
  counts, its jobs' provider requests and usage (tokens, characters, seconds of audio, by
  kind and provider, ended jobs included), and every running job's per-node counters from
  its graph runner (labelled with job, room, graph and node).
- ``GET /jobs/<id>/graph``: a live HTML page of an active job: its graph drawn
  (:mod:`flowkit.viz.html`) with its figures, updated every second from
- ``GET /jobs/<id>/metrics.json``: the job's figures now: ``metrics`` (a
  :class:`~flowkit.runtime.metrics.GraphMetrics`), ``turns`` (stage times in seconds since
  the graph started), and each node's and edge's figure lines as the drawing writes them.

An unknown (or ended) job is a ``404`` naming the active jobs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from flowkit.spec import graph_spec
from flowkit.trace import TurnTrace, trace_of_run
from flowkit.usage import UsageSummary
from flowkit.worker.jobs import RunningJob
from flowkit.worker.memory import BYTES_PER_MB
from flowkit.worker.worker import Worker

__all__ = ["WorkerCollector", "WorkerHTTPServer", "job_figures", "live_page", "make_app"]

_NODE_COUNTERS = (
    ("messages_in", "flowkit_node_messages_in", "Messages delivered to the node."),
    ("messages_out", "flowkit_node_messages_out", "Messages the node emitted."),
    ("errors", "flowkit_node_errors", "Errors caught at the node's boundary."),
    ("restarts", "flowkit_node_restarts", "Times the node was restarted."),
    ("dropped", "flowkit_node_dropped", "Messages the node dropped."),
    ("busy_s", "flowkit_node_busy_seconds", "Time the node spent working."),
)
_NODE_LABELS = ["job_id", "room", "graph", "node"]


class WorkerCollector(Collector):
    """Collects a worker's figures when Prometheus scrapes (nothing is kept in between)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def collect(self) -> Iterator[Metric]:
        """The worker's load, memory, jobs and every running graph's per-node counters."""
        w = self.worker
        yield GaugeMetricFamily("flowkit_worker_load", "The load last reported (0-1).", w.load)
        yield from _memory_metrics(w)
        yield from _loop_metrics(w)
        yield from _usage_metrics(w.usage.summary())
        yield GaugeMetricFamily("flowkit_worker_active_jobs", "Jobs running now.", len(w.jobs))
        yield GaugeMetricFamily(
            "flowkit_worker_connected", "1 while registered with the server.", int(w.connected)
        )
        ended = CounterMetricFamily(
            "flowkit_worker_jobs_ended", "Jobs ended, by outcome.", labels=["outcome"]
        )
        for outcome in ("success", "failed", "terminated"):
            ended.add_metric([outcome], w.outcomes.get(outcome, 0))
        yield ended
        families = {
            attr: CounterMetricFamily(name, doc, labels=_NODE_LABELS)
            for attr, name, doc in _NODE_COUNTERS
        }
        latency = GaugeMetricFamily(
            "flowkit_node_latency_p95_seconds", "The node's 95th percentile time per message.",
            labels=_NODE_LABELS,
        )
        for job in list(w.jobs.values()):
            if job.runner is None:
                continue
            metrics = job.runner.metrics()
            for node in metrics.nodes:
                labels = [job.id, job.room_name, metrics.graph, node.name]
                for attr, family in families.items():
                    family.add_metric(labels, float(getattr(node, attr)))
                latency.add_metric(labels, node.latency_p95_ms / 1000)
        yield from families.values()
        yield latency


def _memory_metrics(worker: Worker) -> Iterator[Metric]:
    memory, mb = worker.memory, BYTES_PER_MB
    if memory.rss_mb is not None:  # not read yet, or not on this platform: no sample
        yield GaugeMetricFamily(
            "flowkit_worker_memory_bytes",
            "The worker process's resident memory (RSS) as last read.", memory.rss_mb * mb,
        )
    yield GaugeMetricFamily(
        "flowkit_worker_memory_warn_bytes", "memory_warn_mb in bytes (0: off).",
        memory.warn_mb * mb,
    )
    yield GaugeMetricFamily(
        "flowkit_worker_memory_limit_bytes", "memory_limit_mb in bytes (0: no limit).",
        memory.limit_mb * mb,
    )
    yield GaugeMetricFamily(
        "flowkit_worker_memory_over_limit",
        "1 while the process is over memory_limit_mb and the worker reports itself full.",
        int(memory.over_limit),
    )


def _loop_metrics(worker: Worker) -> Iterator[Metric]:
    watch = worker.loop_watch
    if watch is None:  # loop_stall_ms=0: nothing is measured
        return
    yield CounterMetricFamily(
        "flowkit_worker_loop_stalls",
        "Times code blocked the event loop every job shares for loop_stall_ms or more.",
        watch.stalls,
    )
    yield CounterMetricFamily(
        "flowkit_worker_loop_stalled_seconds", "The time those stalls lasted, in all.",
        watch.stalled_s,
    )
    yield GaugeMetricFamily(
        "flowkit_worker_loop_stall_longest_seconds", "The longest stall so far.", watch.longest_s
    )


def _usage_metrics(usage: UsageSummary) -> Iterator[Metric]:
    requests = CounterMetricFamily(
        "flowkit_provider_requests", "Requests the jobs' provider nodes made.",
        labels=["kind", "provider"],
    )
    used = CounterMetricFamily(
        "flowkit_provider_usage",
        "What the jobs' providers consumed: tokens, characters, seconds of audio, by value.",
        labels=["kind", "provider", "value"],
    )
    # Summed over nodes: a node's name is the graph's business, the bill is the provider's.
    by_provider: dict[tuple[str, str], tuple[int, dict[str, float]]] = {}
    for p in usage.providers:
        count, values = by_provider.get((p.kind, p.provider), (0, {}))
        for name, value in p.values.items():
            values[name] = values.get(name, 0.0) + value
        by_provider[(p.kind, p.provider)] = (count + p.requests, values)
    for (kind, provider), (count, values) in by_provider.items():
        requests.add_metric([kind, provider], count)
        for name, value in values.items():
            used.add_metric([kind, provider, name], value)
    yield requests
    yield used


def _describe(worker: Worker) -> dict[str, Any]:
    now = time.time()
    rss = worker.memory.rss_mb
    return {
        "id": worker.id,
        "agent_name": worker.options.agent_name,
        "job_type": worker.options.job_type.value,
        "connected": worker.connected,
        "draining": worker.draining,
        "status": "full" if worker.full else "available",
        "load": worker.load,
        "load_threshold": worker.options.load_threshold,
        "max_jobs": worker.options.max_jobs,
        "memory_mb": round(rss, 1) if rss is not None else None,
        "memory_state": worker.memory.state.value,
        "memory_warn_mb": worker.options.memory_warn_mb,
        "memory_limit_mb": worker.options.memory_limit_mb,
        "loop_stall_ms": worker.options.loop_stall_ms,
        "loop_stalls": worker.loop_watch.stalls if worker.loop_watch is not None else None,
        "loop_stall_longest_ms": round(worker.loop_watch.longest_s * 1000, 1)
        if worker.loop_watch is not None else None,
        "usage": worker.usage.summary().model_dump(mode="json")["providers"],
        "active_jobs": [
            {
                "id": job.id,
                "room": job.room_name,
                "graph": job.runner.graph.name if job.runner is not None else None,
                "running_s": round(now - job.started, 3),
                "usage": job.context.usage.summary().model_dump(mode="json")["providers"],
            }
            for job in list(worker.jobs.values())
        ],
    }


def job_figures(job: RunningJob) -> dict[str, Any]:
    """What ``/jobs/<id>/metrics.json`` answers for ``job`` (which has a runner).

    ``node_figures`` and ``edge_figures`` (in ``spec.edges`` order) are the lines the
    drawing writes, so the live page replaces text without knowing how figures are put.
    """
    from flowkit.viz.svg import edge_figures, node_figures  # see live_page

    runner = job.runner
    assert runner is not None, "only jobs with a runner are served"
    metrics = runner.metrics()
    spec = graph_spec(runner.plan)
    by_ports = {(e.source, e.target): e for e in metrics.edges}
    edges = [
        by_ports.get((f"{e.source}.{e.source_port}", f"{e.target}.{e.target_port}"))
        for e in spec.edges
    ]
    turns = job.timeline.turns if job.timeline is not None else []
    return {
        "job_id": job.id,
        "room": job.room_name,
        "running_s": round(time.time() - job.started, 3),
        "state": str(runner.state),
        "metrics": metrics.model_dump(mode="json"),
        "turns": [TurnTrace.of(t, job.origin).model_dump(mode="json") for t in turns],
        "node_figures": {n.name: node_figures(n) for n in metrics.nodes},
        "edge_figures": [edge_figures(e) if e is not None else "" for e in edges],
    }


_LIVE_CSS = """
#live{padding:6px 20px;background:#fffbe6;border-bottom:1px solid #eed;font-size:13px}
#live.ended{background:#fde8e8}
#live-turns table{border-collapse:collapse;background:#fff;font-size:12px}
#live-turns td,#live-turns th{border:1px solid #ddd;padding:2px 8px;text-align:right}
#live-turns td:nth-child(2){text-align:left}
"""

# Polls metrics.json (relative: the page is /jobs/<id>/graph) once a second and rewrites the
# figure lines already on the drawing; it stops when the job has ended (404).
_LIVE_JS = """
(function(){
var box=document.getElementById('live'),turns=document.getElementById('live-turns');
var updates=0,names=['stt','endpointing','llm','tts','playout','voice_to_voice'];
function esc(s){return String(s).replace(/[&<>"]/g,function(c){
 return {'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c];});}
function lines(els,text){for(var i=0;i<els.length;i++){
 els[i].textContent=i<els.length-1?(text[i]||''):text.slice(i).join(' · ');}}
function ms(v){return v===null||v===undefined?'-':Math.round(v*1000);}
function show(d){
 d.metrics.nodes.forEach(function(n){
  var g=document.querySelector('#drawing .node[data-node="'+CSS.escape(n.name)+'"]');
  if(g){lines(g.querySelectorAll('text.figure'),d.node_figures[n.name]);}});
 d.edge_figures.forEach(function(text,i){
  var t=document.querySelector('#drawing .edge-label[data-edge="'+i+'"] text.figure');
  if(t){t.textContent=text;}});
 updates+=1;box.setAttribute('data-updates',String(updates));
 box.textContent='live · job '+d.job_id+' · room '+d.room+' · '+d.state+' · running '+
  d.running_s.toFixed(0)+' s · '+d.turns.length+' turns · updated '+
  new Date().toLocaleTimeString();
 var rows=d.turns.slice(-8).map(function(t,i){
  return '<tr><td>'+t.turn_id+'</td><td>'+esc(t.user_text||'(reply from code)')+
   (t.interrupted?' [interrupted]':'')+'</td>'+
   names.map(function(k){return '<td>'+ms(t.latencies[k])+'</td>';}).join('')+'</tr>';});
 turns.innerHTML='<h2>last turns (ms)</h2><table><tr><th>turn</th><th>user</th>'+
  names.map(function(k){return '<th>'+k+'</th>';}).join('')+'</tr>'+rows.join('')+'</table>';
}
function tick(){
 fetch('metrics.json',{cache:'no-store'}).then(function(r){
  if(!r.ok){box.textContent='the job has ended (HTTP '+r.status+'); figures as last seen';
   box.className='ended';return null;}
  return r.json();
 }).then(function(d){if(d){show(d);setTimeout(tick,1000);}})
 .catch(function(e){box.textContent='cannot reach the worker: '+e;setTimeout(tick,2000);});
}
tick();
})();
"""


def live_page(job: RunningJob) -> str:
    """The live HTML page of ``job``: its drawing with its figures now, kept up to date.

    The drawing is :func:`flowkit.viz.html.render_html` of the job's trace so far (so every
    node and edge has its figure lines); the static turn timeline and figures table are left
    out, the live turns table replaces them.
    """
    # The renderers (and rich, which the text drawing uses) on the first page asked for: most
    # workers are never looked at.
    from flowkit.viz.html import render_html

    assert job.runner is not None, "only jobs with a runner are served"
    timeline = job.timeline
    if timeline is None:  # the runner is built but the timeline not attached yet
        from flowkit.timeline import TurnTimeline

        timeline = TurnTimeline()
    trace = trace_of_run(job.runner, timeline, job.origin)
    page = render_html(trace.graph, trace)
    start, end = page.find('<section id="turns">'), page.find('<script type="application/json"')
    if 0 <= start < end:
        page = page[:start] + page[end:]
    page = page.replace("</style>", _LIVE_CSS + "</style>", 1)
    page = page.replace(
        "<main>", '<div id="live">live: waiting for the first figures…</div><main>', 1
    )
    return page.replace(
        "</body></html>",
        f'<section id="live-turns"></section><script>{_LIVE_JS}</script></body></html>',
    )


def make_app(worker: Worker) -> web.Application:
    """The aiohttp application serving ``worker``'s endpoints (see the module docs)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkerCollector(worker))

    async def health(_: web.Request) -> web.Response:
        if worker.connected:
            return web.Response(text="OK")
        return web.Response(status=503, text="not connected to the LiveKit server")

    async def describe(_: web.Request) -> web.Response:
        return web.json_response(_describe(worker))

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    def active(request: web.Request) -> RunningJob:
        job_id = request.match_info["job_id"]
        job = worker.jobs.get(job_id)
        if job is None or job.runner is None:
            ids = ", ".join(sorted(worker.jobs)) or "none"
            raise web.HTTPNotFound(
                text=f"no active job {job_id!r} on this worker (it ended, or never ran "
                f"here); active jobs: {ids}; see /worker\n"
            )
        return job

    async def job_graph(request: web.Request) -> web.Response:
        return web.Response(text=live_page(active(request)), content_type="text/html")

    async def job_metrics(request: web.Request) -> web.Response:
        return web.json_response(job_figures(active(request)))

    app = web.Application()
    app.router.add_get("/", health)
    app.router.add_get("/worker", describe)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/jobs/{job_id}/graph", job_graph)
    app.router.add_get("/jobs/{job_id}/metrics.json", job_metrics)
    return app


class WorkerHTTPServer:
    """Serves :func:`make_app` on a host and port; ``port`` is the bound port once started.

    Args:
        worker: The worker described.
        host: The address to listen on.
        port: The port (0: any free port).
    """

    def __init__(self, worker: Worker, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._runner = web.AppRunner(make_app(worker), access_log=None)

    async def start(self) -> None:
        """Listen; afterwards ``self.port`` is the real port."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])

    async def aclose(self) -> None:
        """Stop listening."""
        await self._runner.cleanup()

    @property
    def url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

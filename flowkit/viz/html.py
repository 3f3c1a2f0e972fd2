"""The HTML drawing: one self-contained page with the SVG drawing and a little script.

Hovering or clicking a node shows its parameters and ports beside the drawing (a URL ending
in ``#node=NAME`` opens with that node shown). Given a :class:`~flowkit.trace.Trace`, the
drawing carries its figures and the page adds a timeline of turns, each bar split into its
stages (STT, endpointing, LLM, TTS, playout), and a table of the nodes by time spent.

Nothing is fetched: styles, script and data are inline, so the file works offline, as an
attachment, or from a CI artifact.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from html import escape

from flowkit.spec import GraphSpec
from flowkit.trace import Trace, TurnTrace
from flowkit.viz.svg import node_ids, render_svg

__all__ = ["STAGE_COLOURS", "render_html"]

STAGE_COLOURS: dict[str, str] = {
    "stt": "#5b8def",
    "endpointing": "#a0a7b4",
    "llm": "#f0a030",
    "tts": "#3cb371",
    "playout": "#b57edc",
}
"""The colour of each stage of a turn's breakdown (``voice_to_voice`` is their sum)."""

_CSS = """
body{font-family:system-ui,'DejaVu Sans',sans-serif;margin:0;color:#222;background:#f4f5f7}
header{padding:12px 20px;background:#fff;border-bottom:1px solid #ddd}
header h1{font-size:18px;margin:0}
header p{margin:4px 0 0;color:#555}
.problems{color:#b00020}
main{display:flex;gap:16px;padding:16px 20px;align-items:flex-start}
#drawing{flex:1;overflow:auto;background:#fff;border:1px solid #ddd;border-radius:6px}
#drawing .node{cursor:pointer}
#drawing .node.selected rect.box{stroke-width:3.5}
#drawing .edge.lit path{stroke:#e67e22!important}
#details{width:340px;flex:none;background:#fff;border:1px solid #ddd;border-radius:6px;
 padding:12px;font-size:13px;position:sticky;top:8px;max-height:90vh;overflow:auto}
#details h2{font-size:15px;margin:0 0 4px}
#details table{border-collapse:collapse;width:100%;margin:6px 0}
#details td{border-top:1px solid #eee;padding:2px 4px;vertical-align:top;word-break:break-word}
#details td:first-child{color:#555;white-space:nowrap}
section{padding:0 20px 16px}
section h2{font-size:16px}
.turn{display:grid;grid-template-columns:220px 1fr 90px;gap:8px;align-items:center;
 margin:4px 0;font-size:12px}
.turn .who{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.bar{display:flex;height:20px;background:#fff;border:1px solid #ddd}
.bar span{display:block;height:100%;overflow:hidden;font-size:10px;line-height:20px;
 color:#fff;text-align:center;white-space:nowrap}
.key span{display:inline-block;margin-right:12px;font-size:12px}
.key i{display:inline-block;width:10px;height:10px;margin-right:4px}
table.figures{border-collapse:collapse;background:#fff;font-size:12px}
table.figures td,table.figures th{border:1px solid #ddd;padding:2px 8px;text-align:right}
table.figures td:first-child,table.figures th:first-child{text-align:left}
"""

# Reads the spec (and figures) from the JSON block and fills the side panel; it adds nothing
# the drawing needs, so the picture is whole even where scripts are off.
_JS = """
(function(){
var data=JSON.parse(document.getElementById('flowkit-data').textContent);
var panel=document.getElementById('details');
var nodes={};data.spec.nodes.forEach(function(n){nodes[n.name]=n;});
function esc(s){return String(s).replace(/[&<>"]/g,function(c){
 return {'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c];});}
function rows(pairs){return '<table>'+pairs.map(function(p){
 return '<tr><td>'+esc(p[0])+'</td><td>'+esc(p[1])+'</td></tr>';}).join('')+'</table>';}
function port(p){return [p.name,p.type+(p.format?' · '+p.format:'')+
 (p.required?' (required)':'')+(p.feedback?' (feedback)':'')];}
function show(name){
 var n=nodes[name];if(!n)return;
 var html='<h2>'+esc(n.name)+'</h2><div>'+esc(n.kind)+'</div><div>'+esc(n.doc||'')+'</div>';
 html+=rows([['library',n.library],['style',n.style],['error policy',n.error_policy],
  ['group',n.group||'-'],['inserted',n.inserted?'yes (a converter the graph added)':'no']]);
 html+='<h3>parameters</h3>'+rows(Object.keys(n.params).map(function(k){
  return [k,JSON.stringify(n.params[k])];}));
 html+='<h3>inputs</h3>'+rows(n.inputs.map(port));
 html+='<h3>outputs</h3>'+rows(n.outputs.map(port));
 var m=data.figures[name];
 if(m){html+='<h3>figures</h3>'+rows(Object.keys(m).filter(function(k){return k!=='name';})
  .map(function(k){return [k,m[k]];}));}
 panel.innerHTML=html;panel.setAttribute('data-node',name);
 document.querySelectorAll('#drawing .node').forEach(function(g){
  g.classList.toggle('selected',g.getAttribute('data-node')===name);});
 document.querySelectorAll('#drawing .edge').forEach(function(g){
  g.classList.toggle('lit',g.getAttribute('data-source')===name||
   g.getAttribute('data-target')===name);});
}
document.querySelectorAll('#drawing .node').forEach(function(g){
 var name=g.getAttribute('data-node');
 g.addEventListener('mouseenter',function(){show(name);});
 g.addEventListener('click',function(){show(name);
  history.replaceState(null,'','#node='+encodeURIComponent(name));});
});
var m=/^#node=(.*)$/.exec(location.hash);
if(m){show(decodeURIComponent(m[1]));}
document.body.setAttribute('data-ready','yes');
})();
"""


def render_html(spec: GraphSpec, trace: Trace | None = None) -> str:
    """Draw ``spec`` as a self-contained HTML page, with ``trace``'s figures if given."""
    figures = (
        {n.name: n.model_dump() for n in trace.metrics.nodes} if trace is not None else {}
    )
    data = json.dumps({"spec": spec.model_dump(mode="json"), "figures": figures},
                      ensure_ascii=False)
    # "</" would end the script element early; "<\\/" is the same JSON string.
    data = data.replace("</", "<\\/")
    title = escape(spec.name)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title} · flowkit</title><style>{_CSS}</style></head><body>",
        f"<header><h1>{title}</h1><p>{escape(_summary(spec, trace))}</p>",
        *_problems(spec),
        "</header>",
        '<main><div id="drawing">',
        render_svg(spec, trace),
        '</div><aside id="details"><h2>details</h2>'
        "<p>Hover over or click a node to see its parameters and ports.</p></aside></main>",
    ]
    if trace is not None:
        parts.extend(_timeline(trace))
        parts.extend(_figures_table(spec, trace))
    parts.append(f'<script type="application/json" id="flowkit-data">{data}</script>')
    parts.append(f"<script>{_JS}</script></body></html>")
    return "\n".join(parts) + "\n"


def _summary(spec: GraphSpec, trace: Trace | None) -> str:
    inserted = sum(1 for n in spec.nodes if n.inserted)
    loops = sum(1 for e in spec.edges if e.feedback)
    text = (f"{spec.description + ' · ' if spec.description else ''}{len(spec.nodes)} nodes, "
            f"{len(spec.edges)} edges, {loops} feedback, {inserted} inserted")
    if trace is not None:
        text += f" · trace of {trace.created or 'a run'}: {trace.duration_s:.2f} s, "
        text += f"{len(trace.turns)} turns"
        missing = trace.mismatches(spec)
        if missing:
            text += f" (no figures for {', '.join(missing)}: a trace of another graph?)"
    return text


def _problems(spec: GraphSpec) -> Iterable[str]:
    if spec.problems:
        yield '<ul class="problems">'
        for p in spec.problems:
            yield f"<li>[{escape(p.kind)}] {escape(p.message)}</li>"
        yield "</ul>"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def _timeline(trace: Trace) -> Iterable[str]:
    yield '<section id="turns"><h2>turns: where the time went</h2>'
    if not trace.turns:
        yield "<p>No turns in this trace.</p></section>"
        return
    yield '<div class="key">' + "".join(
        f'<span><i style="background:{c}"></i>{escape(s)}</span>'
        for s, c in STAGE_COLOURS.items()
    ) + "<span>end of speech → first audio played</span></div>"
    scale = max((_total(t) for t in trace.turns), default=0.0) or 1.0
    for number, turn in enumerate(trace.turns, start=1):
        yield from _turn_row(number, turn, scale)
    yield "</section>"


def _total(turn: TurnTrace) -> float:
    return sum(turn.latencies.get(s) or 0.0 for s in STAGE_COLOURS)


def _turn_row(number: int, turn: TurnTrace, scale: float) -> Iterable[str]:
    said = turn.user_text or "(reply from code)"
    flag = " [interrupted]" if turn.interrupted else ""
    yield (f'<div class="turn" data-turn="{turn.turn_id}"><div class="who" '
           f'title="{escape(turn.agent_text)}">turn {number}: {escape(said)}{flag}</div>'
           '<div class="bar">')
    for stage, colour in STAGE_COLOURS.items():
        value = turn.latencies.get(stage)
        if value is None or value <= 0:
            continue
        share = 100 * value / scale
        yield (f'<span class="stage" data-stage="{stage}" style="width:{share:.2f}%;'
               f'background:{colour}" title="{stage} {_ms(value)}">{stage} {_ms(value)}</span>')
    total = turn.latencies.get("voice_to_voice")
    yield f'</div><div class="total">{_ms(total)}</div></div>'


def _figures_table(spec: GraphSpec, trace: Trace) -> Iterable[str]:
    ids = node_ids(spec)
    yield '<section id="figures"><h2>nodes by time spent</h2><table class="figures">'
    yield ("<tr><th>node</th><th>in</th><th>out</th><th>busy s</th><th>p50 ms</th>"
           "<th>p95 ms</th><th>p99 ms</th><th>errors</th><th>dropped</th></tr>")
    ranked = sorted(trace.metrics.nodes, key=lambda n: (-n.busy_s, -n.latency_p95_ms, n.name))
    for n in ranked:
        ref = f' data-node-id="{ids[n.name]}"' if n.name in ids else ""
        yield (f"<tr{ref}><td>{escape(n.name)}</td><td>{n.messages_in}</td>"
               f"<td>{n.messages_out}</td><td>{n.busy_s:.3f}</td><td>{n.latency_p50_ms:.3f}</td>"
               f"<td>{n.latency_p95_ms:.3f}</td><td>{n.latency_p99_ms:.3f}</td>"
               f"<td>{n.errors}</td><td>{n.dropped}</td></tr>")
    yield "</table></section>"

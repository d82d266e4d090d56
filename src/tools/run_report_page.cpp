// The run report's page (run_report.h): HTML, CSS and the script that draws it from the
// embedded run data. No network, no library: the charts are SVG built by the script below.
//
// What the Chromium test (scripts/check_report.py) relies on:
//   - each chart is a <figure data-chart=NAME>; each series a <polyline data-series=KEY
//     data-points=N>, and the series drawn with dots have one <circle data-series=KEY> per
//     metrics line that carries KEY (the smoothed loss is a line only);
//   - script errors are written into <ul id="page-errors"> (and so into the dumped DOM);
//   - <main data-drawn="yes"> once the whole page has been built.
#include <string>

namespace ll {

extern const char* const kRunReportPage;

const char* const kRunReportPage = R"page(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>llama-lora run report</title>
<style>
:root { --fg: #1d1d1f; --muted: #666; --line: #ddd; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
       margin: 0 auto; max-width: 1180px; padding: 12px; }
h1 { font-size: 1.35em; margin: .2em 0; overflow-wrap: anywhere; }
h2 { font-size: 1.15em; margin: 1.2em 0 .4em; border-bottom: 1px solid var(--line); }
h3 { font-size: 1em; margin: .2em 0; }
.sub { color: var(--muted); margin: 0 0 .6em; overflow-wrap: anywhere; }
.note { background: #fff4e5; border-left: 4px solid #f0a020; padding: .5em .8em; margin: .5em 0; }
#page-errors { background: #fde8e8; border-left: 4px solid #d62728; padding: .5em 1.5em; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 8px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 6px 10px; }
.card b { display: block; font-size: 1.1em; overflow-wrap: anywhere; }
.card span { color: var(--muted); font-size: .85em; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 460px), 1fr));
          gap: 12px; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 6px;
         position: relative; }
figcaption { font-weight: 600; }
.legend { font-weight: normal; font-size: .85em; margin-left: .6em; }
.legend span { margin-right: 1em; white-space: nowrap; }
.legend i { display: inline-block; width: 14px; height: 3px; vertical-align: middle;
            margin-right: 4px; }
svg { width: 100%; height: auto; display: block; touch-action: pan-y; }
svg text { font-size: 11px; fill: var(--muted); }
.tip { position: absolute; pointer-events: none; background: rgba(255, 255, 255, .95);
       border: 1px solid #999; border-radius: 4px; padding: 2px 6px; font-size: 12px;
       white-space: pre; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
td, th { border-bottom: 1px solid var(--line); padding: 3px 6px; text-align: left;
         vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td code { overflow-wrap: anywhere; }
summary { cursor: pointer; font-weight: 600; }
pre { font-family: ui-monospace, monospace; font-size: .88em; white-space: pre-wrap;
      overflow-wrap: anywhere; margin: 0; background: #f6f6f6; padding: 4px 6px;
      border-radius: 4px; }
.example { border: 1px solid var(--line); border-radius: 6px; padding: 8px; margin: 8px 0; }
.side { display: grid; grid-template-columns: 1fr 1fr; gap: 8px; margin-top: 6px; }
@media (max-width: 640px) { .side { grid-template-columns: 1fr; } body { font-size: 14px; } }
</style>
</head>
<body>
<ul id="page-errors" hidden></ul>
<script>
// Any script error is shown on the page (and fails the Chromium test).
window.addEventListener('error', function (event) {
  var list = document.getElementById('page-errors');
  var item = document.createElement('li');
  item.textContent = 'script error: ' + event.message + ' (line ' + event.lineno + ')';
  list.appendChild(item);
  list.hidden = false;
});
</script>
<main id="report"></main>
<script type="application/json" id="run-data">@RUN_DATA@</script>
<script>
'use strict';
const data = JSON.parse(document.getElementById('run-data').textContent);
const SVG_NS = 'http://www.w3.org/2000/svg';

// An HTML element with attributes and children (strings become text, never markup).
function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function svg(tag, attrs, parent) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  parent.appendChild(node);
  return node;
}

// Numbers for people: integers with separators, others with 5 significant digits.
function num(v) {
  if (v === null || v === undefined) return '–';
  if (typeof v !== 'number') return String(v);
  if (Number.isInteger(v)) return v.toLocaleString('en-US');
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(3);
  const text = v.toPrecision(5);
  return text.includes('.') ? text.replace(/\.?0+$/, '') : text;
}
function mib(v) { return num(+v.toFixed(1)) + ' MiB'; }
function duration(s) {
  if (typeof s !== 'number') return '–';
  const t = Math.round(s);
  if (t >= 3600) return Math.floor(t / 3600) + 'h' + String(Math.floor(t / 60) % 60).padStart(2, '0') + 'm';
  if (t >= 60) return Math.floor(t / 60) + 'm' + String(t % 60).padStart(2, '0') + 's';
  return s.toFixed(1) + ' s';
}

function extent(values) { return [Math.min(...values), Math.max(...values)]; }

// About `count` round tick values in [a, b] (steps of 1, 2 or 5 times a power of ten).
function ticks(a, b, count) {
  const raw = (b - a) / count;
  const magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map(m => m * magnitude).find(v => raw <= v);
  const out = [];
  for (let t = Math.ceil(a / step) * step; t <= b + step * 1e-9; t += step) {
    out.push(+t.toPrecision(12));
  }
  return out;
}

// TensorBoard's smoothing: an exponential moving average, debiased at the start.
function smoothed(points, weight) {
  let last = 0;
  return points.map((p, i) => {
    last = last * weight + (1 - weight) * p[1];
    return [p[0], last / (1 - Math.pow(weight, i + 1))];
  });
}

// A chart of `series` ([{key, label, color, points: [[step, value]], dots, width}]) against
// the step; hovering (or touching) shows every series' value at the nearest logged step.
function chart(name, title, series, format) {
  // As wide as a phone's screen where that is narrower, so the labels stay legible there.
  const W = Math.max(320, Math.min(600, document.getElementById('report').clientWidth - 14));
  const H = 250, L = 62, R = 22, T = 10, B = 28;  // R: room for the last step's label
  const legend = h('span', {class: 'legend'});
  for (const line of series) {
    const swatch = h('i');
    swatch.style.background = line.color;
    legend.append(h('span', {}, swatch, line.label));
  }
  const figure = h('figure', {'data-chart': name}, h('figcaption', {}, title, legend));
  const all = series.flatMap(line => line.points);
  if (all.length === 0) {
    figure.append(h('p', {class: 'sub'}, 'nothing logged'));
    return figure;
  }
  let [x0, x1] = extent(all.map(p => p[0]));
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  let [y0, y1] = extent(all.map(p => p[1]));
  const pad = (y1 - y0) * 0.06 || Math.abs(y0) * 0.1 || 1;
  y0 -= pad;
  y1 += pad;
  const X = v => L + (v - x0) / (x1 - x0) * (W - L - R);
  const Y = v => T + (y1 - v) / (y1 - y0) * (H - T - B);
  const plot = h('div');
  const root = document.createElementNS(SVG_NS, 'svg');
  root.setAttribute('viewBox', `0 0 ${W} ${H}`);
  root.setAttribute('role', 'img');
  root.setAttribute('aria-label', title);
  for (const t of ticks(y0, y1, 5)) {
    svg('line', {x1: L, x2: W - R, y1: Y(t), y2: Y(t), stroke: '#eee'}, root);
    svg('text', {x: L - 5, y: Y(t) + 4, 'text-anchor': 'end'}, root).textContent = format(t);
  }
  for (const t of ticks(x0, x1, 6).filter(Number.isInteger)) {
    svg('line', {x1: X(t), x2: X(t), y1: H - B, y2: H - B + 4, stroke: '#999'}, root);
    svg('text', {x: X(t), y: H - B + 16, 'text-anchor': 'middle'}, root).textContent = num(t);
  }
  for (const line of series) {
    const points = line.points.map(p => X(p[0]).toFixed(1) + ',' + Y(p[1]).toFixed(1));
    svg('polyline', {points: points.join(' '), fill: 'none', stroke: line.color,
                     'stroke-width': line.width, 'data-series': line.key,
                     'data-points': line.points.length}, root);
    if (!line.dots) continue;
    for (const p of line.points) {
      svg('circle', {cx: X(p[0]).toFixed(1), cy: Y(p[1]).toFixed(1), r: 2.5, fill: line.color,
                     'data-series': line.key}, root);
    }
  }
  const cursor = svg('line', {y1: T, y2: H - B, stroke: '#888', 'stroke-dasharray': '3 3',
                              visibility: 'hidden'}, root);
  const tip = h('div', {class: 'tip', hidden: ''});
  root.addEventListener('pointermove', event => {
    const box = root.getBoundingClientRect();
    const at = x0 + ((event.clientX - box.left) / box.width * W - L) / (W - L - R) * (x1 - x0);
    const step = all.reduce((a, b) => Math.abs(b[0] - at) < Math.abs(a[0] - at) ? b : a)[0];
    const rows = ['step ' + num(step)];
    for (const line of series) {
      const p = line.points.find(q => q[0] === step);
      if (p) rows.push(line.label + ': ' + format(p[1]));
    }
    tip.textContent = rows.join('\n');
    tip.hidden = false;
    cursor.setAttribute('x1', X(step));
    cursor.setAttribute('x2', X(step));
    cursor.setAttribute('visibility', 'visible');
    const px = X(step) / W * box.width;
    const left = px > box.width * 0.6 ? px - tip.offsetWidth - 8 : px + 8;
    tip.style.left = (root.getBoundingClientRect().left - figure.getBoundingClientRect().left + left) + 'px';
    tip.style.top = (root.offsetTop + 6) + 'px';
  });
  root.addEventListener('pointerleave', () => {
    tip.hidden = true;
    cursor.setAttribute('visibility', 'hidden');
  });
  plot.append(root);
  figure.append(plot, tip);
  return figure;
}

function setting(name) {
  for (const group of data.settings) {
    for (const [key, value] of group.items) if (key === name) return value;
  }
  return undefined;
}

function card(label, value) { return h('div', {class: 'card'}, h('span', {}, label), h('b', {}, value)); }

function table(head, rows) {
  const body = rows.map(cells => h('tr', {}, ...cells.map((c, i) =>
    i === 0 ? h('th', {}, c) : h('td', {class: typeof c === 'string' && /^[-\d.,% ()–]+$/.test(c) ? 'num' : ''}, c))));
  return h('div', {class: 'scroll'},
           h('table', {}, h('thead', {}, h('tr', {}, ...head.map(c => h('th', {}, c)))),
             h('tbody', {}, ...body)));
}

function notes() {
  const out = [];
  const m = data.metrics;
  if (m.cut_line !== null) {
    out.push(h('p', {class: 'note'}, `${m.file} line ${m.cut_line} is cut short (the run stopped ` +
      `while writing it): this report shows the ${m.lines} complete lines before it.`));
  }
  if (!m.finished) {
    out.push(h('p', {class: 'note'}, `${m.file} has no summary line: the run did not finish ` +
      `(it stopped, crashed or is still running); the figures go up to step ${data.overview.steps}.`));
  }
  return out;
}

function overview() {
  const o = data.overview;
  const max = setting('max_steps');
  const dp = o.world_size / o.tensor_parallel_size;
  return h('div', {class: 'cards'},
    card('steps', num(o.steps) + (typeof max === 'number' && max > 0 ? ' of ' + num(max) : '')),
    card('duration', duration(o.duration_s)),
    card('tokens trained', num(o.tokens)),
    card('train loss (mean)', num(o.train_loss)),
    card('last logged train loss', num(o.final_train_loss)),
    card('final eval loss', num(o.final_eval_loss)),
    card('best eval loss', o.best_eval_loss === null ? '–' :
         num(o.best_eval_loss) + ' (step ' + num(o.best_eval_step) + ')'),
    card('topology', `${o.world_size} rank${o.world_size > 1 ? 's' : ''}: tp ${o.tensor_parallel_size} × dp ${dp}`),
    card('compute', setting('compute') ?? '–'));
}

function charts() {
  const pick = key => data.lines.filter(l => typeof l[key] === 'number').map(l => [l.step, l[key]]);
  const loss = pick('loss');
  const dots = (key, label, color) => ({key, label, color, points: pick(key), dots: true, width: 1.5});
  return h('div', {class: 'charts'},
    chart('loss', 'Loss', [
      {key: 'loss', label: 'train', color: '#9ecae1', points: loss, dots: true, width: 1},
      {key: 'smoothed', label: 'train, smoothed', color: '#1f5fa8', points: smoothed(loss, 0.6), dots: false, width: 2.5},
      {key: 'eval_loss', label: 'eval', color: '#d62728', points: pick('eval_loss'), dots: true, width: 2}], num),
    chart('learning_rate', 'Learning rate', [dots('learning_rate', 'lr', '#2ca02c')], num),
    chart('grad_norm', 'Gradient norm', [dots('grad_norm', 'before clipping', '#9467bd')], num),
    chart('tokens_per_s', 'Tokens per second', [dots('tokens_per_s', 'trained tokens/s', '#ff7f0e')], num),
    // In MiB before the ticks are chosen, so that they fall on round MiB.
    chart('peak_rss_bytes', 'Memory', [{...dots('peak_rss_bytes', 'peak RSS', '#8c564b'),
      points: pick('peak_rss_bytes').map(p => [p[0], p[1] / 1048576])}], mib));
}

function evaluation() {
  if (data.evals.length === 0) return null;
  const rate = (e, key) => !e.sql ? '–' : num(e.sql[key]) +
    (typeof e.sql[key + '_rate'] === 'number' ? ` (${(100 * e.sql[key + '_rate']).toFixed(1)}%)` : '');
  const rows = [
    ['eval loss', e => num(e.eval_loss)], ['perplexity', e => num(e.perplexity)],
    ['held-out rows', e => num(e.eval_rows)], ['answers generated', e => num(e.generated_rows)],
    ['exact match', e => rate(e, 'exact')], ['valid SQL', e => rate(e, 'valid')],
    ['execution match', e => rate(e, 'exec_match')]];
  const head = ['', ...data.evals.map(e => h('span', {}, e.file, h('br'), h('code', {}, e.model),
                                            e.adapter ? h('code', {}, ' + ' + e.adapter) : null))];
  return [h('h2', {}, 'Evaluation'), table(head, rows.map(([label, f]) => [label, ...data.evals.map(f)]))];
}

function examples() {
  const c = data.compare;
  if (!c) return null;
  const out = [h('h2', {}, `Examples: base vs tuned (${c.file})`)];
  for (const e of c.examples) {
    const prompt = (e.prompt || []).map(m => m.role + ': ' + m.content).join('\n\n');
    out.push(h('div', {class: 'example'},
      h('h3', {}, `example ${e.example} (line ${e.line})`),
      h('details', {}, h('summary', {}, 'prompt'), h('pre', {}, prompt)),
      h('div', {}, h('b', {}, 'reference'), h('pre', {}, e.reference)),
      h('div', {class: 'side'},
        h('div', {}, h('b', {}, 'base '), h('code', {}, c.base), h('pre', {}, e.base_output)),
        h('div', {}, h('b', {}, 'tuned '), h('code', {}, c.tuned), h('pre', {}, e.tuned_output)))));
  }
  return out;
}

function checkpoints() {
  const list = data.checkpoints;
  return [h('h2', {}, 'Checkpoints'), list.length === 0 ? h('p', {class: 'sub'}, 'none in the run folder') :
    h('ul', {}, ...list.map(c => h('li', {}, h('code', {}, c.name))))];
}

function settings() {
  if (data.settings.length === 0) {
    return [h('h2', {}, 'Settings'), h('p', {class: 'sub'}, 'no training_args.json in the run folder')];
  }
  return [h('h2', {}, 'Settings'), ...data.settings.map((group, i) =>
    h('details', i < 2 ? {open: ''} : {}, h('summary', {}, group.group),
      table(['setting', 'value'], group.items.map(([k, v]) => [k, h('code', {}, typeof v === 'string' ? v : JSON.stringify(v))]))))];
}

const main = document.getElementById('report');
const name = data.run_dir.replace(/\/+$/, '').split('/').pop() || data.run_dir;
document.title = 'llama-lora run: ' + name;
main.append(h('h1', {}, 'Run report: ' + name),
            h('p', {class: 'sub'}, `${data.run_dir} · ${data.metrics.lines} lines of ${data.metrics.file} · ${data.written_by}`),
            ...notes(), overview(), h('h2', {}, 'Curves'),
            h('p', {class: 'sub'}, 'against the optimizer step; hover or touch a chart for its values'), charts());
for (const part of [evaluation(), examples(), checkpoints(), settings()]) {
  if (part) main.append(...part);
}
main.dataset.drawn = 'yes';
</script>
</body>
</html>
)page";

}  // namespace ll

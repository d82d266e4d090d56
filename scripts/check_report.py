#!/usr/bin/env python3
"""The run report as a person sees it: headless Chromium renders report.html of a tiny run.

  check_report.py LLAMA_LORA [--steps N] [--screenshot FILE.png] [--keep DIR]

Trains a tiny model for N steps (a metrics line every step, evaluations and checkpoints on
the way), evaluates and compares base and tuned, writes the report, and has Chromium
(Debian's `chromium`) load it with --dump-dom. Fails when:
  - Chromium logs a console message or an uncaught error, or the page's own error list
    (<ul id="page-errors">) has an entry, or the page did not finish drawing;
  - a chart does not have one point per metrics.jsonl line that carries its figure (loss,
    eval_loss, learning_rate, grad_norm, tokens_per_s, peak_rss_bytes; every line but the
    summary is a train or an eval line);
  - the eval table or the examples are missing;
  - a chart's hover box does not show the step and its values when a pointer moves over it.
Then the same for a run that "crashed": its metrics.jsonl cut in the middle of a line; the
page must draw what is there and say that the line is cut. Saves a screenshot of the full
run's report (--screenshot). Exit 77 (ctest: skipped) when Chromium is not installed, except
under CI (CI set in the environment), where that fails.
Standard library only.
"""
import argparse
import html
import html.parser
import json
import os
import shutil
import subprocess
import sys
import tempfile

SKIP = 77
WORK = None  # the folder of the run and Chromium's profiles (main sets it)
CHART_SERIES = {  # chart -> the metrics keys it draws with one dot per line
    "loss": ["loss", "eval_loss"],
    "learning_rate": ["learning_rate"],
    "grad_norm": ["grad_norm"],
    "tokens_per_s": ["tokens_per_s"],
    "peak_rss_bytes": ["peak_rss_bytes"],
}


def run(cmd, **kwargs):
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        sys.exit(f"check_report: {' '.join(cmd)} failed ({result.returncode}):\n{result.stderr}")
    return result


class Dom(html.parser.HTMLParser):
    """What the check needs from the dumped DOM."""

    def __init__(self):
        super().__init__()
        self.chart = None
        self.dots = {}  # (chart, series) -> circles
        self.lines = {}  # (chart, series) -> data-points of the polyline
        self.errors = []
        self.in_errors = False
        self.drawn = False
        self.text = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "figure" and "data-chart" in a:
            self.chart = a["data-chart"]
        elif tag == "circle" and self.chart:
            key = (self.chart, a.get("data-series"))
            self.dots[key] = self.dots.get(key, 0) + 1
        elif tag == "polyline" and self.chart:
            self.lines[(self.chart, a.get("data-series"))] = int(a.get("data-points", -1))
        elif tag == "ul" and a.get("id") == "page-errors":
            self.in_errors = True
        elif tag == "li" and self.in_errors:
            self.errors.append("")
        elif tag == "main" and a.get("data-drawn") == "yes":
            self.drawn = True

    def handle_endtag(self, tag):
        if tag == "figure":
            self.chart = None
        elif tag == "ul":
            self.in_errors = False

    def handle_data(self, data):
        if self.in_errors and self.errors:
            self.errors[-1] += data
        self.text.append(data)


def chromium_args(chromium):
    """Chromium, headless, with a fresh profile beside the page's run (removed with it)."""
    return [chromium, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
            "--enable-logging=stderr", "--v=0", "--user-data-dir=" + tempfile.mkdtemp(dir=WORK)]


def render(chromium, page):
    """The page's DOM after its scripts ran, and Chromium's log."""
    result = run(chromium_args(chromium) + ["--dump-dom", "file://" + os.path.abspath(page)],
                 timeout=120)
    return result.stdout, result.stderr


# Appended to a copy of the page: a pointer moves over the middle of each chart, and what its
# hover box says is written into the DOM.
HOVER_PROBE = """<script>
const probe = document.createElement('pre');
probe.id = 'hover-probe';
for (const figure of document.querySelectorAll('figure[data-chart]')) {
  const plot = figure.querySelector('svg');
  if (!plot) continue;
  const box = plot.getBoundingClientRect();
  plot.dispatchEvent(new PointerEvent('pointermove', {clientX: box.left + box.width / 2,
                                                      clientY: box.top + box.height / 2}));
  const tip = figure.querySelector('.tip');
  probe.append(figure.dataset.chart + ': ' + (tip.hidden ? '(hidden)' : tip.textContent.replace(/\\n/g, ' | ')) + '\\n');
}
document.body.append(probe);
</script>
"""


def check_hover(chromium, page):
    """Every chart answers a pointer with the step and a value of each of its series."""
    with open(page, encoding="utf-8") as f:
        text = f.read()
    probe_page = page[: -len(".html")] + "-hover.html"
    with open(probe_page, "w", encoding="utf-8") as f:
        f.write(text.replace("</body>", HOVER_PROBE + "</body>"))
    dom_text, _ = render(chromium, probe_page)
    start = dom_text.find('<pre id="hover-probe">')
    rows = html.unescape(dom_text[start:dom_text.find("</pre>", start)]).split(">", 1)[-1]
    rows = [row for row in rows.splitlines() if row]
    bad = [row for row in rows if "step " not in row or ": " not in row.split("|", 1)[-1]]
    if len(rows) != len(CHART_SERIES) or bad:
        sys.exit(f"check_report: {page}: hover boxes: {rows}")
    print(f"check_report: hover: {rows[0]}")


def expected_points(metrics_path):
    """Per (chart, series) the number of metrics lines with that figure; the cut line left out."""
    lines = []
    with open(metrics_path, encoding="utf-8") as f:
        for number, text in enumerate(f, 1):
            try:
                lines.append(json.loads(text))
            except json.JSONDecodeError:
                if text.endswith("\n"):
                    sys.exit(f"check_report: {metrics_path}:{number}: not JSON")
    body = [line for line in lines if "train_runtime_s" not in line]
    train = [line for line in body if "loss" in line]
    evals = [line for line in body if "eval_loss" in line]
    if len(train) + len(evals) != len(body):
        sys.exit(f"check_report: {metrics_path}: a line is neither a train nor an eval line")
    counts = {}
    for chart, keys in CHART_SERIES.items():
        for key in keys:
            counts[(chart, key)] = sum(1 for line in body if isinstance(line.get(key), (int, float)))
    counts[("loss", "smoothed")] = counts[("loss", "loss")]
    return counts, len(lines)


def check_page(chromium, page, metrics_path, must_contain):
    dom_text, log = render(chromium, page)
    failures = []
    for line in log.splitlines():
        if "CONSOLE" in line or "Uncaught" in line:
            failures.append("console: " + line.strip())
    dom = Dom()
    dom.feed(dom_text)
    failures += ["page error: " + e for e in dom.errors]
    if not dom.drawn:
        failures.append("the page did not finish drawing (no <main data-drawn=yes>)")
    counts, line_count = expected_points(metrics_path)
    for (chart, key), want in counts.items():
        drawn = dom.lines.get((chart, key), 0) if key == "smoothed" else dom.dots.get((chart, key), 0)
        if drawn != want:
            failures.append(f"chart {chart}, series {key}: {drawn} points, metrics.jsonl has {want}")
        if want and dom.lines.get((chart, key)) != want:
            failures.append(f"chart {chart}, series {key}: the line has "
                            f"{dom.lines.get((chart, key))} points, want {want}")
    text = " ".join(dom.text)
    for part in must_contain:
        if part not in text:
            failures.append(f"the page does not say {part!r}")
    if failures:
        sys.exit(f"check_report: {page}:\n  " + "\n  ".join(failures))
    points = sum(dom.dots.values())
    print(f"check_report: {page}: {len(counts)} series, {points} points for {line_count} "
          f"metrics lines, no console errors")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("llama_lora")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--screenshot", default="report-screenshot.png")
    parser.add_argument("--keep", help="work in this folder and keep it")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("check_report: no chromium (Debian package `chromium`; scripts/setup installs it)")
        return 1 if os.environ.get("CI") else SKIP
    bin_ = os.path.abspath(args.llama_lora)
    global WORK
    work = WORK = args.keep or tempfile.mkdtemp(prefix="check_report.")
    os.makedirs(work, exist_ok=True)
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    model, data, out = (os.path.join(work, name) for name in ("model", "sql.jsonl", "run"))
    run([bin_, "init", "--preset", "tiny", "-o", model, "--overwrite"], env=env)
    run([bin_, "make-data", "--preset", "sql", "--rows", "400", "--seed", "0", "-o", data], env=env)
    run([bin_, "train", "--recipe", "sql", "--model", model, "--data", data, "--output_dir", out,
         "--overwrite_output_dir", "--max_seq_length", "128", "--learning_rate", "3e-3",
         "--completion_only_loss", "--max_steps", str(args.steps), "--logging_steps", "1",
         "--eval_steps", str(max(1, args.steps // 3)), "--save_steps", str(max(1, args.steps // 2)),
         "--eval_rows", "40"], env=env)
    if not os.path.isfile(os.path.join(out, "report.html")):
        sys.exit(f"check_report: train wrote no {out}/report.html")
    held_out = ["--data", data, "--eval_rows", "40", "--max_new_tokens", "24"]
    evals = []
    for name, extra in (("base", []), ("tuned", ["--adapter", out])):
        path = os.path.join(work, f"eval-{name}.json")
        result = run([bin_, "eval", "--model", model, *extra, *held_out, "--limit", "3",
                      "--max_seq_length", "128", "--completion_only_loss", "--json"], env=env)
        with open(path, "w", encoding="utf-8") as f:
            f.write(result.stdout)
        evals += ["--eval", path]
    compare = os.path.join(work, "compare.json")
    result = run([bin_, "compare", "--base", model, "--tuned", out, *held_out, "--examples", "0,1",
                  "--json"], env=env)
    with open(compare, "w", encoding="utf-8") as f:
        f.write(result.stdout)
    page = os.path.join(work, "report.html")
    run([bin_, "report", out, "-o", page, *evals, "--compare", compare], env=env)
    check_page(chromium, page, os.path.join(out, "metrics.jsonl"),
               ["Evaluation", "execution match", "Examples: base vs tuned", "checkpoint-"])
    check_hover(chromium, page)

    # A run killed while writing a line: every complete line before it is drawn.
    crashed = os.path.join(work, "crashed")
    os.makedirs(crashed, exist_ok=True)
    shutil.copy(os.path.join(out, "training_args.json"), crashed)
    with open(os.path.join(out, "metrics.jsonl"), encoding="utf-8") as f:
        lines = f.readlines()
    keep = len(lines) // 2
    with open(os.path.join(crashed, "metrics.jsonl"), "w", encoding="utf-8") as f:
        f.write("".join(lines[:keep]) + lines[keep][: len(lines[keep]) // 2])
    run([bin_, "report", crashed], env=env)
    check_page(chromium, os.path.join(crashed, "report.html"),
               os.path.join(crashed, "metrics.jsonl"),
               [f"line {keep + 1} is cut short", "the run did not finish"])

    run(chromium_args(chromium) + ["--hide-scrollbars", "--window-size=1280,1900",
                                   "--screenshot=" + os.path.abspath(args.screenshot),
                                   "file://" + os.path.abspath(page)], timeout=120)
    if not os.path.getsize(args.screenshot):
        sys.exit(f"check_report: empty screenshot {args.screenshot}")
    print(f"check_report: screenshot {args.screenshot}")
    if not args.keep:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())

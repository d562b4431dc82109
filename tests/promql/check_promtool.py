"""Checks the expectations of Grace's own promqltest files against
Prometheus 2.42 itself: every `load` segment becomes a `promtool test
rules` test group with the same input series, every `eval instant` a
`promql_expr_test` whose expected samples are the file's; every
`eval_fail` must make promtool report an error. promtool compares values
exactly, so an expectation here is Prometheus's answer, not ours.

    python3 check_promtool.py FILE.test...

Not checked (said in the summary): range evaluations (promtool has no
range queries), expectations holding NaN (promtool cannot compare NaN),
and results of string or range-vector type."""

import math
import os
import re
import shutil
import subprocess
import sys
import tempfile

UNITS = [("ms", 1), ("y", 365 * 86400000), ("w", 7 * 86400000), ("d", 86400000),
         ("h", 3600000), ("m", 60000), ("s", 1000)]


def duration_ms(s):
    if s == "0":
        return 0
    total, rest = 0, s
    while rest:
        m = re.match(r"(\d+)(ms|y|w|d|h|m|s)", rest)
        if not m:
            raise ValueError("bad duration %r" % s)
        total += int(m.group(1)) * dict(UNITS)[m.group(2)]
        rest = rest[m.end():]
    return total


def parse_number(tok):
    t = tok.lower().lstrip("+")
    if t in ("inf", "+inf"):
        return math.inf
    if t == "-inf":
        return -math.inf
    if t in ("nan", "-nan"):
        return math.nan
    return float(tok)


NUM = r"[-+]?(?:[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|[Ii]nf|NaN|nan)"


def expand(items):
    """A promqltest value sequence as a list of floats, None (omitted) or
    'stale'."""
    out = []
    for it in items:
        if it == "_":
            out.append(None)
        elif it.startswith("_x"):
            out.extend([None] * int(it[2:]))
        elif it == "stale":
            out.append("stale")
        else:
            m = re.fullmatch(r"(%s)(?:([-+](?:[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?))?x([0-9]+))?" % NUM, it)
            if not m:
                raise ValueError("bad value item %r" % it)
            a = parse_number(m.group(1))
            if m.group(3) is None:
                out.append(a)
                continue
            b = float(m.group(2)) if m.group(2) else 0.0
            for _ in range(int(m.group(3)) + 1):
                out.append(a)
                a += b
    return out


def split_series(line):
    """'name{labels} v v' -> ('name{labels}', ['v', 'v'])."""
    depth, i, inq = 0, 0, None
    while i < len(line):
        c = line[i]
        if inq:
            if c == "\\":
                i += 2
                continue
            if c == inq:
                inq = None
        elif c in "\"'":
            inq = c
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                i += 1
                break
        elif c in " \t" and depth == 0:
            break
        i += 1
    return line[:i].strip(), line[i:].split()


def fmt(v):
    if v is None:
        return "_"
    if v == "stale":
        return "stale"
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Inf" if v > 0 else "-Inf"
    return repr(v)


def yaml_str(s):
    return "'" + s.replace("'", "''") + "'"


def yaml_float(v):
    if math.isinf(v):
        return ".inf" if v > 0 else "-.inf"
    return repr(v)


class Segment:
    def __init__(self):
        self.series = {}  # labels -> {t_ms: value}
        self.steps = []
        self.evals = []   # (line, kind, at, expr, expected)


def parse_file(path):
    lines = []
    with open(path) as f:
        for raw in f:
            s = raw.strip()
            lines.append("" if s.startswith("#") else s)
    segs = [Segment()]
    i = 0
    while i < len(lines):
        l = lines[i]
        if not l:
            i += 1
            continue
        if l == "clear":
            segs.append(Segment())
            i += 1
            continue
        if l.startswith("load "):
            step = duration_ms(l.split()[1])
            segs[-1].steps.append(step)
            block = {}
            i += 1
            while i < len(lines) and lines[i]:
                name, items = split_series(lines[i])
                block[name] = expand(items)
                i += 1
            for name, vals in block.items():
                pts = segs[-1].series.setdefault(name, {})
                for k, v in enumerate(vals):
                    if v is not None:
                        pts[k * step] = v
            continue
        if l.startswith("eval"):
            m = re.match(r"eval(_fail|_ordered)?\s+instant\s+at\s+(\S+)\s+(.+)$", l)
            exp, lineno = [], i + 1
            i += 1
            while i < len(lines) and lines[i]:
                exp.append(lines[i])
                i += 1
            if not m:
                segs[-1].evals.append((lineno, "range", None, l, exp))
                continue
            kind = "fail" if m.group(1) == "_fail" else "eval"
            segs[-1].evals.append((lineno, kind, m.group(2), m.group(3), exp))
            continue
        raise ValueError("%s:%d: unknown command %r" % (path, i + 1, l))
    return segs


def group_yaml(seg, tests, interval_ms):
    out = ["  - interval: %dms" % interval_ms, "    input_series:"]
    if not seg.series:
        out.append("      - series: 'promtool_placeholder'")
        out.append("        values: '0'")
    for name, pts in seg.series.items():
        last = max(pts) if pts else 0
        vals = [pts.get(k * interval_ms) for k in range(last // interval_ms + 1)]
        out.append("      - series: %s" % yaml_str(name))
        out.append("        values: %s" % yaml_str(" ".join(fmt(v) for v in vals)))
    out.append("    promql_expr_test:")
    # promtool loads samples only up to the latest eval_time of a group:
    # a test at the last sample makes all of them visible (negative
    # offsets, @ in the future).
    last = max((max(p) for p in seg.series.values() if p), default=0)
    out.append("      - expr: 'vector(0)'")
    out.append("        eval_time: %dms" % last)
    out.append("        exp_samples:")
    out.append("          - labels: '{}'")
    out.append("            value: 0")
    for expr, at, samples in tests:
        out.append("      - expr: %s" % yaml_str(expr))
        out.append("        eval_time: %s" % at)
        if not samples:
            out.append("        exp_samples: []")
            continue
        out.append("        exp_samples:")
        for labels, v in samples:
            out.append("          - labels: %s" % yaml_str(labels))
            out.append("            value: %s" % yaml_float(v))
    return "\n".join(out)


def run_promtool(tmp, groups_yaml):
    rules = os.path.join(tmp, "rules.yml")
    with open(rules, "w") as f:
        f.write("groups: []\n")
    test = os.path.join(tmp, "test.yml")
    with open(test, "w") as f:
        f.write("rule_files:\n  - rules.yml\nevaluation_interval: 1m\ntests:\n")
        f.write("\n".join(groups_yaml) + "\n")
    p = subprocess.run(["promtool", "test", "rules", test], capture_output=True, text=True,
                       cwd=tmp, timeout=300)
    return p.returncode, p.stdout + p.stderr


def main(paths):
    if not shutil.which("promtool"):
        sys.exit("promtool (Debian's prometheus package) is needed: run scripts/bootstrap.sh --test")
    checked = skipped = failed = 0
    tmp = tempfile.mkdtemp(prefix="grace-promtool-")
    try:
        for path in paths:
            file_checked = file_skipped = 0
            groups = []
            fails = []
            for seg in parse_file(path):
                interval = math.gcd(*seg.steps) if seg.steps else 60000
                tests = []
                for lineno, kind, at, expr, exp in seg.evals:
                    if kind == "range":
                        file_skipped += 1
                        continue
                    if kind == "fail":
                        fails.append((lineno, seg, interval, expr, at))
                        continue
                    samples, ok = [], True
                    for e in exp:
                        if re.fullmatch(NUM, e):
                            if math.isnan(parse_number(e)):
                                ok = False
                                break
                            samples.append(("{}", parse_number(e)))
                            continue
                        name, items = split_series(e)
                        if len(items) != 1:
                            ok = False
                            break
                        v = parse_number(items[0])
                        if math.isnan(v):
                            ok = False
                            break
                        samples.append((name if name else "{}", v))
                    # Prometheus folds stddev/stdvar with a running update
                    # over the series in hash order: the last bit of a
                    # result that is not exact varies between its own runs,
                    # and promtool compares exactly. Our runner compares
                    # these with a tolerance (promqltest.c).
                    if ok and re.search(r"\bstd(dev|var)(_over_time)?\b", expr) and any(
                            v != round(v, 6) for _, v in samples):
                        ok = False
                    if not ok or expr.lstrip("(").startswith(("\"", "'", "`")):
                        file_skipped += 1
                        continue
                    tests.append((expr, at, samples))
                    file_checked += 1
                if tests:
                    groups.append(group_yaml(seg, tests, interval))
            if groups:
                rc, out = run_promtool(tmp, groups)
                if rc != 0:
                    failed += 1
                    print("%s: promtool disagrees:\n%s" % (path, out))
            for lineno, seg, interval, expr, at in fails:
                rc, out = run_promtool(tmp, [group_yaml(seg, [(expr, at, [])], interval)])
                if rc == 0:
                    failed += 1
                    print("%s:%d: %s: Prometheus evaluates it without an error" % (path, lineno, expr))
                file_checked += 1
            print("%-24s checked against promtool: %3d, not checkable: %3d"
                  % (os.path.basename(path), file_checked, file_skipped))
            checked += file_checked
            skipped += file_skipped
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("total: %d checked, %d not checkable, %d file(s) with disagreements"
          % (checked, skipped, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

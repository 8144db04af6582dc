"""The code both benchmarks/speculative_speed.py and tests/app/test_speculative.py ask the model to
rewrite: a reply that copies much of its prompt, where prompt lookup (draft = "ngram") pays.

CODE is the benchmark's 60 lines; EXCERPT three of its functions, the tests' shorter prompt.
"""

from __future__ import annotations

CODE = """import json
import os
import sys


def ld(p):
    with open(p) as f:
        d = json.load(f)
    return d


def sv(p, d):
    t = p + ".tmp"
    with open(t, "w") as f:
        json.dump(d, f, indent=2)
    os.replace(t, p)


def f1(d, k, v):
    x = dict(d)
    x[k] = v
    return x


def f2(l):
    r = []
    for i in l:
        if i not in r:
            r.append(i)
    return r


def f3(l, n):
    o = []
    for i in range(0, len(l), n):
        o.append(l[i : i + n])
    return o


def cnt(s):
    c = {}
    for w in s.split():
        w = w.lower().strip(".,!?")
        c[w] = c.get(w, 0) + 1
    return c


def top(c, n):
    it = sorted(c.items(), key=lambda a: a[1], reverse=True)
    return it[:n]


def run(p):
    d = ld(p)
    s = d.get("text", "")
    c = cnt(s)
    d["top"] = top(c, 5)
    d["words"] = f2(s.split())
    sv(p, d)


if __name__ == "__main__":
    run(sys.argv[1])
"""
EXCERPT = (
    "\n\n\n".join(part for part in CODE.split("\n\n\n") if part.startswith(("def ld", "def cnt", "def top"))) + "\n"
)


def rewrite(code: str) -> list[dict[str, str]]:
    """The chat that asks for `code` with better names."""
    return [{"role": "user", "content": f"Rewrite this code with better names:\n\n```python\n{code}```"}]

#!/usr/bin/env python3
"""Fails when the crate's top-level modules import each other in a cycle.

Reads every `crate::<module>` path in src/ (in `use` lines and inline paths, tests
included), builds the graph between top-level modules (src/<module>.rs or src/<module>/),
and prints each strongly connected group of more than one module with the lines that
create its edges. main.rs is the binary, not a module of the library, and is skipped.

It also checks the layering: src/lib.rs lists the modules in data-flow order, and a module
may only use modules listed above it. Each edge that points down is printed.

Usage: scripts/check_module_cycles.py [SRC_DIR]   (exit 0: no cycle and no downward edge)
"""
import os
import re
import sys

src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "src")
src = os.path.normpath(src)
PATH = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
USE_GROUP = re.compile(r"\buse\s+crate::\{([^;]*)\}", re.S)

def top_module(rel):
    first = rel.split(os.sep)[0]
    return first[:-3] if first.endswith(".rs") else first

edges = {}   # (from, to) -> first "file:line"
for root, _, files in os.walk(src):
    for f in files:
        if not f.endswith(".rs"):
            continue
        path = os.path.join(root, f)
        rel = os.path.relpath(path, src)
        here = top_module(rel)
        if here in ("main", "lib"):
            continue
        text = open(path, encoding="utf-8").read()
        found = [(m.group(1), m.start()) for m in PATH.finditer(text)]
        for g in USE_GROUP.finditer(text):
            for name in re.findall(r"(?:^|[,{\s])([a-z_][a-z0-9_]*)\s*(?:::|[,}]|$)", g.group(1)):
                found.append((name, g.start()))
        for target, pos in found:
            if target in (here, "self"):
                continue
            line = text.count("\n", 0, pos) + 1
            edges.setdefault((here, target), f"{rel}:{line}")

graph = {}
for (a, b) in edges:
    graph.setdefault(a, set()).add(b)
    graph.setdefault(b, set())

# Tarjan's strongly connected components.
index, low, stack, on, groups, counter = {}, {}, [], set(), [], [0]
def visit(v):
    index[v] = low[v] = counter[0]; counter[0] += 1
    stack.append(v); on.add(v)
    for w in graph[v]:
        if w not in index:
            visit(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        g = []
        while True:
            w = stack.pop(); on.discard(w); g.append(w)
            if w == v:
                break
        if len(g) > 1:
            groups.append(sorted(g))
sys.setrecursionlimit(10000)
for v in sorted(graph):
    if v not in index:
        visit(v)

failed = False
for g in groups:
    failed = True
    print("cycle: " + " <-> ".join(g))
    for (a, b), where in sorted(edges.items()):
        if a in g and b in g:
            print(f"  {a} -> {b}   ({where})")

lib = open(os.path.join(src, "lib.rs"), encoding="utf-8").read()
order = {m: i for i, m in enumerate(re.findall(r"^pub(?:\(crate\))? mod (\w+);", lib, re.M))}
for (a, b), where in sorted(edges.items()):
    if a in order and b in order and order[b] > order[a]:
        failed = True
        print(f"layering: {a} uses {b}, which lib.rs lists below it ({where})")

if failed:
    sys.exit(1)
print(f"no module cycles among {len(graph)} top-level modules; every use points up lib.rs's order")

#!/usr/bin/env python3
"""Fails when the top-level modules of a Rust crate import each other in a cycle.

    scripts/check-module-cycles.py SRC_DIR [SRC_DIR ...]
    scripts/check-module-cycles.py --graph crates/tinyvae-train/src   # also print the edges

For each source directory (a crate's `src`, holding `lib.rs` or `main.rs`), every file is
attributed to its top-level module (`src/engine/files.rs` and `src/engine.rs` are both
`engine`). A module depends on another when its code names it: `crate::x::...`, `use crate::{x,
...}`, or a `super::`/`self::` path that climbs out of the module's own subtree. Paths into a
module's own subtree are not dependencies, and neither are comments (intra-doc links) or string
literals. A name the crate root re-exports (`crate::Foo` after `pub use x::Foo;` in lib.rs)
counts as a dependency on the module it comes from.

Prints one line per crate and, for a crate with cycles, each group of modules that reach one
another (a strongly connected component) with one shortest cycle through it and the file and
line of each edge's first use. The exit status is 1 when any crate has a cycle, 2 on bad
arguments. Python 3 standard library only.
"""

import os
import re
import sys

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip_comments_and_strings(text):
    """`text` with comments, string and char literals blanked out (newlines kept, so line
    numbers still match)."""
    out = []
    i, n = 0, len(text)
    depth = 0  # nesting of /* */ comments
    while i < n:
        c = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if depth:
            if c == "/" and nxt == "*":
                depth, i = depth + 1, i + 2
            elif c == "*" and nxt == "/":
                depth, i = depth - 1, i + 2
            else:
                out.append("\n" if c == "\n" else " ")
                i += 1
            continue
        if c == "/" and nxt == "/":
            while i < n and text[i] != "\n":
                i += 1
            continue
        if c == "/" and nxt == "*":
            depth, i = 1, i + 2
            continue
        # Raw strings: r"..", r#".."#, br"..".
        m = re.match(r'b?r(#*)"', text[i:i + 260])
        if m and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            end = text.find('"' + m.group(1), i + len(m.group(0)))
            end = n if end < 0 else end + 1 + len(m.group(1))
            out.append(re.sub(r"[^\n]", " ", text[i:end]))
            i = end
            continue
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(re.sub(r"[^\n]", " ", text[i:j + 1]))
            i = j + 1
            continue
        if c == "'":
            # A char literal ('a', '\n', '\u{..}'), not a lifetime ('a without a closing quote).
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'", text[i:i + 12])
            if m:
                out.append(" " * len(m.group(0)))
                i += len(m.group(0))
                continue
        out.append(c)
        i += 1
    return "".join(out)


def module_files(src):
    """(top-level module, module path inside the crate, file path) of every .rs file under
    `src`, skipping `src/bin` (separate crates). The crate root's module is None."""
    files = []
    for root, dirs, names in os.walk(src):
        rel_root = os.path.relpath(root, src)
        if rel_root.split(os.sep)[0] == "bin":
            dirs[:] = []
            continue
        for name in sorted(names):
            if not name.endswith(".rs"):
                continue
            rel = os.path.normpath(os.path.join(rel_root, name))
            parts = rel[:-3].split(os.sep)
            if parts[-1] == "mod":
                parts = parts[:-1]
            if parts in (["lib"], ["main"]):
                files.append((None, [], os.path.join(root, name)))
                continue
            files.append((parts[0], parts, os.path.join(root, name)))
    return files


def use_groups(text, start):
    """The first identifier of each item of the `{ ... }` group opening at text[start]."""
    items, depth, item_start = [], 0, start + 1
    i = start
    while i < len(text):
        c = text[i]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                items.append(text[item_start:i])
                break
        elif c == "," and depth == 1:
            items.append(text[item_start:i])
            item_start = i + 1
        i += 1
    firsts = []
    for item in items:
        m = re.match(r"\s*(" + IDENT + ")", item)
        if m:
            firsts.append(m.group(1))
    return firsts


def path_references(text):
    """(offset, kind, climbs, first segment) of every path starting with `crate::`, `self::`
    or `super::` (with `super::super::` counted in `climbs`). A group `crate::{a, b::c}`
    gives one reference per item."""
    pattern = re.compile(r"(?<![A-Za-z0-9_$])(crate|self|super)((?:\s*::\s*super)*)\s*::\s*(\{|" + IDENT + ")")
    refs = []
    for m in pattern.finditer(text):
        kind, climbs = m.group(1), m.group(2).count("super")
        if kind == "super":
            climbs += 1
        target = m.group(3)
        if target == "{":
            for first in use_groups(text, m.end(3) - 1):
                refs.append((m.start(), kind, climbs, first))
        else:
            refs.append((m.start(), kind, climbs, target))
    return refs


def inline_module_at(text):
    """A function from an offset to the names of the inline `mod x { ... }` blocks enclosing it."""
    opens = {}
    for m in re.finditer(r"\bmod\s+(" + IDENT + r")\s*\{", text):
        opens[m.end() - 1] = m.group(1)
    spans, stack = [], []
    for i, c in enumerate(text):
        if c == "{":
            stack.append((i, opens.get(i)))
        elif c == "}" and stack:
            start, name = stack.pop()
            if name is not None:
                spans.append((start, i, name))

    def at(offset):
        return [name for start, end, name in sorted(spans) if start < offset < end]

    return at


def root_reexports(root_text):
    """Names the crate root re-exports, mapped to the top-level module they come from."""
    names = {}
    for m in re.finditer(r"\bpub\s+use\s+(?:crate\s*::\s*)?(" + IDENT + r")\s*::\s*([^;]*);", root_text):
        module, rest = m.group(1), m.group(2)
        for name in re.findall(r"(?:\bas\s+)?(" + IDENT + r")\s*(?=[,}]|$)", rest):
            names[name] = module
    return names


def dependencies(src):
    """{module: {dependency: (file, line)}} for the crate in `src`, and the set of modules."""
    files = module_files(src)
    modules = {top for top, _, _ in files if top is not None}
    texts = {path: strip_comments_and_strings(open(path, encoding="utf-8").read()) for _, _, path in files}
    reexports = {}
    for top, _, path in files:
        if top is None:
            reexports.update(root_reexports(texts[path]))
    deps = {m: {} for m in modules}
    for top, parts, path in files:
        if top is None:
            continue
        text = texts[path]
        inline = inline_module_at(text)
        for offset, kind, climbs, first in path_references(text):
            here = parts + inline(offset)
            if kind == "crate":
                absolute = [first]
            else:
                base = here[: len(here) - climbs] if climbs <= len(here) else None
                if base is None:
                    continue
                absolute = base + [first]
            target = absolute[0]
            if target not in modules:
                target = reexports.get(target) if len(absolute) == 1 else None
            if target is None or target == top or target not in modules:
                continue
            line = text.count("\n", 0, offset) + 1
            deps[top].setdefault(target, (path, line))
    return deps, modules


def components(deps):
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []

    def visit(m):
        index[m] = low[m] = len(index)
        stack.append(m)
        on_stack.add(m)
        for d in sorted(deps.get(m, {})):
            if d not in index:
                visit(d)
                low[m] = min(low[m], low[d])
            elif d in on_stack:
                low[m] = min(low[m], index[d])
        if low[m] == index[m]:
            scc = []
            while True:
                x = stack.pop()
                on_stack.discard(x)
                scc.append(x)
                if x == m:
                    break
            if len(scc) > 1:
                found.append(sorted(scc))

    for m in sorted(deps):
        if m not in index:
            visit(m)
    return sorted(found)


def shortest_cycle(deps, scc):
    """A shortest cycle through the first module of `scc` (first repeated at the end)."""
    start = scc[0]
    previous, frontier = {start: None}, [start]
    while frontier:
        nxt = []
        for m in frontier:
            for d in sorted(deps[m]):
                if d not in scc:
                    continue
                if d == start:
                    path = [m]
                    while previous[path[-1]] is not None:
                        path.append(previous[path[-1]])
                    return [start] + list(reversed(path))[1:] + [start]
                if d not in previous:
                    previous[d] = m
                    nxt.append(d)
        frontier = nxt
    return [start, start]


def main(argv):
    show_graph = "--graph" in argv
    dirs = [a for a in argv if a != "--graph"]
    if not dirs or any(a.startswith("-") for a in dirs):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    status = 0
    for src in dirs:
        if not os.path.isdir(src):
            print(f"{src}: not a directory", file=sys.stderr)
            return 2
        deps, modules = dependencies(src)
        if show_graph:
            for m in sorted(deps):
                print(f"{src}: {m} -> {', '.join(sorted(deps[m])) or '(nothing)'}")
        sccs = components(deps)
        if not sccs:
            print(f"{src}: no cycle among {len(modules)} top-level modules")
            continue
        status = 1
        for scc in sccs:
            cycle = shortest_cycle(deps, scc)
            print(f"{src}: CYCLE among {{{', '.join(scc)}}}, e.g. {' -> '.join(cycle)}")
            for a, b in zip(cycle, cycle[1:]):
                path, line = deps[a][b]
                print(f"    {a} -> {b}  ({path}:{line})")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""Runs every shell command the documentation shows, as written, from the repository root.

The READMEs (README.md, firmware/README.md and the C examples' firmware/c-*/README.md,
benches/README.md, crates/tinyvae-train/README.md),
docs/*.md and the model cards (models/*/MODEL.md) show commands in ```sh blocks, and
docs/FAMILY.md in a table (inline `$T ...` code). Each block runs
as one bash script (so `cd` and variables carry from line to line), with `tinyvae` (also spelled
`$T`, `./target/release/tinyvae` or `cargo run --release -p tinyvae-cli --`) being the release
binary. Then:

- quick commands (quantize, validate, sample, inspect, deploy, bench, figure, the firmware and Pi
  builds and runs) run for real;
- long ones (`train`, `eval-ssl`, `train-classifier`: hours of training) run with
  TINYVAE_CHECK_ARGS=1, which parses their arguments and stops; `cargo bench` builds its
  benchmarks (`--no-run`);
- commands that need hardware, a network or root, and commands that read what a long one would
  have written, are listed as skipped with the reason.

The model cards write their blobs and figures over the shipped ones: afterwards no tracked file
under models/, docs/ or firmware/ may differ from what it was before the run, so every shipped blob, PNG and the README's sample
grid (samples.png, compared with docs/samples.png) is still reproduced byte for byte by its
documented command. Files the commands create
outside target/ are removed at the end.

    scripts/doc-commands.py            all documents
    scripts/doc-commands.py README.md  some
"""

import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "tinyvae")

# Subcommands that train for minutes to hours: arguments are parsed, nothing runs.
LONG = ("train", "eval-ssl", "train-classifier", "eval-anomaly")

# (pattern on the joined command line, reason): shown, never run.
SKIP = [
    (r"^\./scripts/test\.sh", "this is the test command that runs these checks"),
    (r"^(\./)?scripts/test-firmware\.sh", "scripts/test.sh runs it"),
    (r"^(\./)?scripts/make-.*\.sh", "retrains every shipped model (hours)"),
    (r"^(probe-rs|dfu-util|rust-objcopy|scp) ", "needs a board or a Raspberry Pi"),
    (r"^sudo ", "installs system packages (scripts/test-firmware.sh installs the same)"),
    (r"^cp .*target/runs/", "copies the output of a training command (arguments checked only)"),
    (r"^tinyvae classify --model target/runs/", "reads a classifier that a training command writes"),
    (r"^python3 models/.*/make\.py", "needs PyTorch; the committed model files are its output"),
    (r"^tinyvae data fetch", "downloads from the internet (tests/data_fetch.rs covers it on a local server)"),
]

# Outputs of README commands that must equal a committed file, byte for byte.
EXPECT_SAME = [("samples.png", "docs/samples.png")]

PRELUDE = f"""
set -euo pipefail
tinyvae() {{
    case "${{1:-}}" in
        {"|".join(LONG)}) TINYVAE_CHECK_ARGS=1 "{BIN}" "$@" ;;
        *) "{BIN}" "$@" ;;
    esac
}}
skipped() {{ echo "   (skipped: $*)"; }}
"""


def blocks(path):
    """The ```sh/```bash blocks of a Markdown file, indented ones (in list items) included."""
    text = open(path, encoding="utf-8").read()
    for m in re.finditer(r"^([ \t]*)```(?:sh|bash|shell)[ \t]*\n(.*?)^[ \t]*```", text, re.S | re.M):
        indent = len(m.group(1))
        lines = [line[indent:] if line[:indent].strip() == "" else line for line in m.group(2).split("\n")]
        yield text[: m.start()].count("\n") + 1, lines


def inline_commands(path):
    """Commands shown as inline code in tables (docs/FAMILY.md's figure table): spans that
    start with `$T `, after the spans that set the variables they use (`T=... D=...`), in
    document order, as one block. (A bare `tinyvae CMD` in prose names a command; it is not
    one to run.)"""
    text = open(path, encoding="utf-8").read()
    text = re.sub(r"^[ \t]*```.*?^[ \t]*```", "", text, flags=re.S | re.M)  # fenced blocks run elsewhere
    spans = re.findall(r"`([^`\n]+)`", text)
    assigns = [s for s in spans if re.fullmatch(r"(?:[A-Z]+=\S+ ?)+", s)]
    cmds = [s for s in spans if s.startswith("$T ")]
    return ([a.replace(" ", "; ") for a in assigns] + cmds) if cmds else []


def commands(lines):
    """Joins backslash continuations; drops blank lines and comments."""
    out, cur = [], ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            cur += line.rstrip()[:-1] + " "
            continue
        cur += line
        if cur.strip() and not cur.strip().startswith("#"):
            out.append(cur.strip())
        cur = ""
    return out


def normalize(cmd):
    """Spells every way the docs call the CLI as `tinyvae`."""
    cmd = re.sub(r"^((?:[A-Z_]+=\S+ )*)(?:\$T|\./target/release/tinyvae|target/release/tinyvae)\b", r"\1tinyvae", cmd)
    cmd = re.sub(r"^cargo run --release -p tinyvae-cli -- ", "tinyvae ", cmd)
    cmd = re.sub(r"(\$\(|do )\$T ", r"\1tinyvae ", cmd)
    cmd = re.sub(r"^(cargo bench .*)$", r"\1 --no-run", cmd)
    return cmd


def script_for(cmds):
    body = []
    for cmd in cmds:
        cmd = normalize(cmd)
        bare = re.sub(r"^(?:[A-Z_]+=\S+ )+", "", cmd)
        reason = next((why for pat, why in SKIP if re.search(pat, bare)), None)
        if reason:
            body.append(f"echo '$ {cmd[:110]}'; skipped {sh_quote(reason)}")
        else:
            body.append(f"echo {sh_quote('$ ' + cmd[:110])}")
            body.append(cmd)
    return PRELUDE + "\n".join(body) + "\n"


def run_block(cmds):
    """Runs one block's commands as a bash script from the repository root; its exit status."""
    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as f:
        f.write(script_for(cmds))
    try:
        return subprocess.run(["bash", f.name], cwd=ROOT).returncode
    finally:
        os.unlink(f.name)


def sh_quote(s):
    return "'" + s.replace("'", "'\\''") + "'"


def untracked():
    out = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


def shipped():
    """Content hashes of the tracked files the documented commands may rewrite."""
    files = subprocess.run(
        ["git", "ls-files", "--", "models", "docs", "firmware"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return {f: hashlib.sha256(open(os.path.join(ROOT, f), "rb").read()).hexdigest() for f in files}


def main():
    docs = sys.argv[1:] or (
        ["README.md", "firmware/README.md", "benches/README.md", "crates/tinyvae-train/README.md"]
        + sorted(glob.glob("firmware/c-*/README.md", root_dir=ROOT))
        + sorted(glob.glob("docs/*.md", root_dir=ROOT))
        + sorted(glob.glob("models/*/MODEL.md", root_dir=ROOT))
    )
    if not os.access(BIN, os.X_OK):
        sys.exit(f"error: {BIN} is missing: cargo build --release -p tinyvae-cli")
    # `--data mnist` names the copy `tinyvae data fetch mnist` downloads. These machines have no
    # internet: the local MNIST beside the repository stands in for the cache.
    data = tempfile.mkdtemp(prefix="tinyvae-data-")
    local = os.path.join(ROOT, "..", "shared", "data", "mnist")
    if os.path.isdir(local):
        os.symlink(os.path.realpath(local), os.path.join(data, "mnist"))
    os.environ["TINYVAE_DATA"] = data
    before = untracked()
    shipped_before = shipped()
    failures, ran = [], 0
    try:
        for doc in docs:
            path = os.path.join(ROOT, doc)
            found = [(f"{doc}:{line}", commands(lines)) for line, lines in blocks(path)]
            found.append((f"{doc} (inline commands)", inline_commands(path)))
            for where, cmds in found:
                if not cmds:
                    continue
                print(f"== {where}", flush=True)
                status = run_block(cmds)
                ran += 1
                if status != 0:
                    failures.append(f"{where} (exit status {status})")
        for out, committed in EXPECT_SAME:
            made = os.path.join(ROOT, out)
            if os.path.exists(made) and open(made, "rb").read() != open(os.path.join(ROOT, committed), "rb").read():
                failures.append(f"{out} differs from {committed}")
        changed = [f for f, digest in shipped().items() if shipped_before.get(f) != digest]
        if changed:
            failures.append("documented commands changed shipped files (not the same bytes): " + ", ".join(changed))
    finally:
        for path in sorted(untracked() - before):
            os.remove(os.path.join(ROOT, path))
        shutil.rmtree(data, ignore_errors=True)
    blocks_failed = len(failures)
    print(f"doc-commands: {ran - blocks_failed} passed, {blocks_failed} failed")
    for f in failures:
        print(f"FAILED: {f}", file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

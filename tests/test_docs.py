"""Every shell command of the README and docs/ runs here, or is marked
`# long run` (or `# after the long run above`, for a report of its
outputs) where it is written."""

import glob
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Run by CI itself: `make test` is this suite, and it installs what the
# README's manual install lines install (Makefile's setup recipe).
RUN_BY_CI = ("make test", "python3.11 -m venv .venv",
             ".venv/bin/pip install --no-deps -e .")


def shell_commands():
    """`(file, command)` of every line of every bash block (continuations
    joined, comments kept)."""
    files = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(
        os.path.join(ROOT, "docs", "**", "*.md"), recursive=True))
    out = []
    for path in files:
        text = open(path).read()
        for block in re.findall(r"```(?:bash|sh|shell)\n(.*?)```", text, re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    out.append((os.path.relpath(path, ROOT), line))
    return out


COMMANDS = shell_commands()
CHEAP = [(f, c) for f, c in COMMANDS if "long run" not in c
         and c.split("#")[0].strip() not in RUN_BY_CI]


def test_there_are_commands_of_both_kinds():
    assert len(COMMANDS) > 20 and len(CHEAP) >= 5
    marked = [c for _, c in COMMANDS if "long run" in c]
    assert any("experiments.reproduce --preset=cpu" in c for c in marked)


@pytest.mark.parametrize("where,command", CHEAP,
                         ids=[f"{f}:{c[:50]}" for f, c in CHEAP])
def test_cheap_command_runs(where, command, tmp_path):
    command = command.split("#")[0].strip()
    assert command.startswith("python -m experiments."), (where, command)
    argv = [sys.executable] + command.split()[1:]
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True,
                         timeout=300, env=dict(os.environ, HOME=str(tmp_path)))
    if "--help" in command.split():  # absl prints the flags, exits 1.
        assert out.returncode in (0, 1) and "--" in out.stdout, (where,
                                                                 command)
    else:
        assert out.returncode == 0, (where, command, out.stderr[-2000:])
    assert not os.path.exists(os.path.join(ROOT, "W"))


def test_relative_links_point_to_files():
    files = [os.path.join(ROOT, "README.md")] + glob.glob(
        os.path.join(ROOT, "docs", "**", "*.md"), recursive=True)
    broken = []
    for path in files:
        for link in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", open(path).read()):
            if link.startswith(("http://", "https://")):
                continue
            target = os.path.normpath(os.path.join(os.path.dirname(path),
                                                   link))
            if not os.path.exists(target):
                broken.append((os.path.relpath(path, ROOT), link))
    assert broken == []

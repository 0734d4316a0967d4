"""``pledgebot --help`` wall time vs the ``--help`` of a bare typer app with the same commands.

The bare app is generated into a temporary file from the real one (read through typer/click
introspection in a child process): the same Typer settings, global options, command groups,
command names and one-line helps, and no imports besides typer. Both run as fresh processes of
the same interpreter, interleaved (one warm-up each, then ``--runs`` pairs); the ratio is the
median pledgebot time ÷ the median bare time, target ≤ 1.5 (lower is better).

The JSON line also lists the modules ``bot/cli/main.py`` imports at top level with their cumulative
import time (``python -X importtime -c "import bot.cli.main"``): the candidates to import lazily.

    .venv/bin/python bench/startup.py [--runs 10] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import ROOT, log, report

TARGET = 1.5
CONSOLE_SCRIPT = Path(sys.executable).with_name("pledgebot")

INTROSPECT = """
import json
import typer.main
from bot.cli.main import cli

group = typer.main.get_command(cli)

def params(command):
    return [
        {"name": p.name, "opts": list(p.opts), "help": getattr(p, "help", None) or "",
         "flag": bool(getattr(p, "is_flag", False)), "count": bool(getattr(p, "count", False))}
        for p in command.params if getattr(p, "param_type_name", "") == "option"
    ]

def commands(group):
    found = []
    for name, command in group.commands.items():
        entry = {"name": name, "help": command.help or ""}
        if hasattr(command, "commands"):  # a group (typer may bring its own click)
            entry["commands"] = commands(command)
        found.append(entry)
    return found

print(json.dumps({"help": group.help or "", "params": params(group), "commands": commands(group)}))
"""


def real_app_shape() -> dict[str, Any]:
    answer = subprocess.run(
        [sys.executable, "-c", INTROSPECT], check=True, capture_output=True, text=True
    )
    return dict(json.loads(answer.stdout))


def bare_app_source(shape: dict[str, Any]) -> str:
    """A typer app with the real one's settings, options and commands, and nothing else."""
    settings = "no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False"
    lines = [
        "import typer",
        "",
        f"cli = typer.Typer(help={shape['help']!r}, {settings}, rich_markup_mode=None)",
        "",
        "",
        "@cli.callback()",
        "def _global(",
    ]
    for param in shape["params"]:
        if param["count"]:
            kind, default, extra = "int", "0", ", count=True"
        elif param["flag"]:
            kind, default, extra = "bool", "False", ""
        else:
            kind, default, extra = "str", "None", ""
        opts = ", ".join(repr(o) for o in param["opts"])
        lines.append(
            f"    {param['name']}: {kind} = typer.Option({default}, {opts}, "
            f"help={param['help']!r}{extra}),"
        )
    lines += [") -> None:", "    pass", ""]
    counter = 0

    def add(commands: list[dict[str, Any]], parent: str) -> None:
        nonlocal counter
        for command in commands:
            counter += 1
            if "commands" in command:
                sub = f"group_{counter}"
                lines.append(f"{sub} = typer.Typer(help={command['help']!r}, no_args_is_help=True)")
                lines.append(f"{parent}.add_typer({sub}, name={command['name']!r})")
                add(command["commands"], sub)
            else:
                lines.extend(
                    [
                        "",
                        f"@{parent}.command({command['name']!r})",
                        f"def command_{counter}() -> None:",
                        f"    {command['help']!r}",
                        "",
                    ]
                )

    add(shape["commands"], "cli")
    lines += ["", "if __name__ == '__main__':", "    cli()", ""]
    return "\n".join(lines)


def count_commands(commands: list[dict[str, Any]]) -> int:
    return sum(count_commands(c["commands"]) if "commands" in c else 1 for c in commands)


def wall_time(argv: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL, env=os.environ.copy())
    return time.perf_counter() - started


def cli_imports() -> list[dict[str, Any]]:
    """Modules bot.cli.main imports directly, by cumulative import time (ms), heaviest first."""
    answer = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import bot.cli.main"],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    rows = []
    for line in answer.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.removeprefix("import time:").split("|")
        depth = (len(name) - len(name.lstrip(" "))) // 2
        rows.append((depth, int(cumulative), name.strip()))
    # -X importtime lists a module after everything it imported: bot.cli.main's direct imports are
    # the entries one level deeper than bot.cli.main that come before it and after its parent `bot`.
    end = next(i for i, row in enumerate(rows) if row[2] == "bot.cli.main")
    start = max(i for i, row in enumerate(rows[:end]) if row[0] <= rows[end][0])
    direct = [
        row
        for row in rows[start + 1 : end]
        if row[0] == rows[end][0] + 1 and row[2] != "bot"  # `bot` is the package, not an import
    ]
    total = {"module": "bot.cli.main (all)", "ms": round(rows[end][1] / 1000, 1)}
    heaviest = sorted(direct, key=lambda row: -row[1])
    return [total, *({"module": name, "ms": round(us / 1000, 1)} for _, us, name in heaviest)]


def main(runs: int) -> bool:
    shape = real_app_shape()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bare = folder / "bare_cli.py"
        bare.write_text(bare_app_source(shape), encoding="utf-8")
        ours_argv = [str(CONSOLE_SCRIPT), "--help"]
        bare_argv = [sys.executable, str(bare), "--help"]
        wall_time(ours_argv, folder), wall_time(bare_argv, folder)  # warm the file cache
        ours, base = [], []
        for _ in range(runs):
            ours.append(wall_time(ours_argv, folder))
            base.append(wall_time(bare_argv, folder))
    ours_s, base_s = statistics.median(ours), statistics.median(base)
    ratio = ours_s / base_s
    imports = cli_imports()
    log("bot/cli/main.py top-level imports by cumulative import time:")
    for entry in imports:
        log(f"  {entry['ms']:8.1f} ms  {entry['module']}")
    commands = count_commands(shape["commands"])
    return report(
        "startup",
        ratio=ratio,
        target=TARGET,
        higher_is_better=False,
        summary=(
            f"`pledgebot --help` {ours_s * 1000:.0f} ms vs a bare typer app with the same "
            f"{commands} commands {base_s * 1000:.0f} ms (median of {runs}, interleaved); "
            f"heaviest top-level imports of bot/cli/main.py: "
            + ", ".join(f"{e['module']} {e['ms']:.0f} ms" for e in imports[1:5])
        ),
        pledgebot_ms=ours_s * 1000,
        baseline_ms=base_s * 1000,
        runs=runs,
        cli_imports_ms=imports[:12],
    )


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="interleaved pairs")
    parser.add_argument("--quick", action="store_true", help="5 pairs")
    parser.add_argument("--strict", action="store_true", help="exit 1 if the target is missed")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs = 5
    return args


if __name__ == "__main__":
    arguments = parse()
    met = main(arguments.runs)
    raise SystemExit(1 if arguments.strict and not met else 0)

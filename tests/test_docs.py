"""The docs show what the code has: every command in a code block of README.md and docs/*.md exists with
the subcommands and flags shown, every config.toml snippet uses keys the config accepts, and every
default docs/api.md states is the code's default.

Why introspection and not `--help`: the click and argparse parser objects say what a command accepts in
microseconds; one subprocess per documented command would take minutes. The test reads the docs and the
code as they are when it runs, so commands, endpoints and flags added later are checked the same way
(nothing here lists what the docs may contain).
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import re
import shlex
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import click
import pytest

from node.api.config import ApiConfig
from node.config import NodeConfig

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_LANGS = {"", "sh", "bash", "shell", "console", "text"}


# -- reading the docs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str

    def where(self, offset: int = 0) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line + 1 + offset}"


def code_blocks(doc: Path) -> Iterator[Block]:
    """Fenced blocks (``` or ~~~, any indentation, e.g. inside a list item)."""
    lines = doc.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"\s*(```|~~~)\s*([\w+-]*)", lines[i])
        if m is None:
            i += 1
            continue
        fence, start, body = m.group(1), i, []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        yield Block(doc, start + 1, m.group(2).lower(), "\n".join(body))
        i += 1


def shell_commands(block: Block) -> Iterator[tuple[str, list[str]]]:
    """(where, argv) for each simple command of a shell block: continuation lines joined, `$ ` prompts
    dropped, comments cut, pipelines and lists split, `$(...)` substitutions checked as commands of their own."""
    logical: list[tuple[int, str]] = []
    pending, first = "", 0
    for n, raw in enumerate(block.text.splitlines()):
        if not pending:
            first = n
        line = raw.rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append((first, pending + line))
        pending = ""
    for n, line in logical:
        line = re.sub(r"^\s*[$#>]\s+(?=\S)", "", line) if re.match(r"^\s*\$\s", line) else line
        subs = re.findall(r"\$\(([^()]*)\)", line)
        line = re.sub(r"\$\(([^()]*)\)", "SUBST", line)
        for text in [line, *subs]:
            for segment in re.split(r"\|\||&&|[|;&]", text):
                try:
                    argv = shlex.split(segment, comments=True)
                except ValueError:  # an unbalanced quote in prose-like output: not a command
                    continue
                while argv and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", argv[0]):  # VAR=value cmd
                    argv.pop(0)
                if argv and argv[0] in ("export", "sudo", "time", "exec", "env"):
                    argv.pop(0)
                    while argv and "=" in argv[0]:
                        argv.pop(0)
                if argv:
                    yield block.where(n), argv


def all_blocks() -> list[Block]:
    return [b for doc in DOCS for b in code_blocks(doc)]


# -- what the code accepts ----------------------------------------------------------------------------------


@dataclass
class Parser:
    """A command's options and subcommands, from a click command or an argparse parser."""

    name: str
    options: dict[str, bool]  # option string -> takes a value
    subcommands: dict[str, "Parser"]
    free: bool = False  # accepts anything (no parser found): only its existence is checked


def from_click(cmd: click.Command) -> Parser:
    options: dict[str, bool] = {"--help": False}
    for p in cmd.params:
        if isinstance(p, click.Option):
            takes = not (p.is_flag or p.count)
            for o in [*p.opts, *p.secondary_opts]:
                options[o] = takes
    subs = {}
    if isinstance(cmd, click.Group):
        subs = {name: from_click(c) for name, c in cmd.commands.items()}
    return Parser(cmd.name or "", options, subs)


def from_argparse(ap: argparse.ArgumentParser) -> Parser:
    options: dict[str, bool] = {}
    subs: dict[str, Parser] = {}
    for action in ap._actions:
        for o in action.option_strings:
            options[o] = action.nargs != 0
        if isinstance(action, argparse._SubParsersAction):
            subs.update({name: from_argparse(p) for name, p in action.choices.items()})
    return Parser(ap.prog, options, subs)


class _Captured(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


def _capture(self: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> Any:
    raise _Captured(self)


def _load_script(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_docs_script_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    sys.path.insert(0, str(path.parent))  # as `python scripts/x.py` does: a script imports its siblings
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


@cache
def script_parser(path: Path) -> Parser:
    """The parser of scripts/NAME.py: the click command its `__main__` block calls, or the argparse
    parser its main() builds (caught at parse_args, before the script does anything with arguments)."""
    source = path.read_text()
    main_block = source.partition('if __name__ == "__main__":')[2]
    called = re.findall(r"\b([A-Za-z_]\w*)\(", main_block)
    if not called:
        return Parser(path.name, {}, {}, free=True)
    module = _load_script(path)
    for name in called:
        obj = getattr(module, name, None)
        if isinstance(obj, click.Command):
            return from_click(obj)
    entry = next((getattr(module, n) for n in called if inspect.isfunction(getattr(module, n, None))), None)
    if entry is None:
        return Parser(path.name, {}, {}, free=True)
    saved = argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args
    argparse.ArgumentParser.parse_args = _capture  # type: ignore[method-assign]
    argparse.ArgumentParser.parse_known_args = _capture  # type: ignore[method-assign,assignment]
    try:
        entry(*([[]] if inspect.signature(entry).parameters else []))
    except _Captured as c:
        return from_argparse(c.parser)
    finally:
        argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args = saved  # type: ignore[method-assign]
    return Parser(path.name, {}, {}, free=True)  # reads sys.argv itself


@cache
def cli_parser(name: str) -> Parser:
    if name == "paynet-node":
        from node.cli import main as node_main

        return from_click(node_main)
    if name == "paynet-signer":
        from custody.cli import main as signer_main

        return from_click(signer_main)
    from wallet.cli import main as wallet_main

    return from_click(wallet_main)


def resolve(argv: list[str]) -> tuple[Parser, list[str], str] | None:
    """(parser, its arguments, what it is) for a paynet command line; None for anything else."""
    head = Path(argv[0]).name
    if head in ("paynet-node", "paynet-wallet", "paynet-signer"):
        return cli_parser(head), argv[1:], head
    if re.fullmatch(r"python3?(\.\d+)?", head) and len(argv) > 1:
        if argv[1] == "-m" and len(argv) > 2 and argv[2] in ("node.cli", "wallet.cli"):
            return cli_parser("paynet-node" if argv[2] == "node.cli" else "paynet-wallet"), argv[3:], argv[2]
        argv = argv[1:]
    if re.fullmatch(r"(\./)?scripts/[\w.-]+", argv[0]):
        path = ROOT / argv[0].removeprefix("./")
        assert path.is_file(), f"{argv[0]} does not exist"
        if path.suffix != ".py":
            return Parser(path.name, {}, {}, free=True), argv[1:], argv[0]
        return script_parser(path), argv[1:], argv[0]
    return None


def check_argv(parser: Parser, args: list[str], shown: str) -> list[str]:
    """What in `args` the parser would not accept: unknown subcommands and options (values and
    positional placeholders such as HOME, <hex> or ... are not judged)."""
    problems: list[str] = []
    i = 0
    while i < len(args) and not parser.free:
        tok = args[i]
        if tok in ("...", "…") or tok.startswith(("<", "[", "{")):
            i += 1
            continue
        if tok.startswith("-") and tok != "-":
            name = tok.split("=", 1)[0]
            if name not in parser.options:
                problems.append(f"{shown}: no option {name} (has {', '.join(sorted(parser.options)) or 'none'})")
                i += 1
                continue
            i += 2 if parser.options[name] and "=" not in tok else 1
            continue
        if parser.subcommands:
            if tok not in parser.subcommands:
                problems.append(f"{shown}: no subcommand {tok!r} (has {', '.join(sorted(parser.subcommands))})")
                return problems
            parser, shown = parser.subcommands[tok], f"{shown} {tok}"
        i += 1
    return problems


# -- the tests ----------------------------------------------------------------------------------------------


_INLINE_COMMAND = re.compile(r"`((?:\S*/)?(?:paynet-node|paynet-wallet|python3? scripts/|scripts/\w+\.py)[^`]*)`")


def inline_commands(doc: Path) -> Iterator[Block]:
    """Commands in `inline code` (tables of troubleshooting.md, prose), each as a one-line block."""
    text = doc.read_text()
    for m in _INLINE_COMMAND.finditer(text):
        yield Block(doc, text.count("\n", 0, m.start()), "sh", m.group(1))


def documented_commands() -> list[tuple[str, list[str]]]:
    blocks = [b for b in all_blocks() if b.lang in SHELL_LANGS]
    blocks += [b for doc in DOCS for b in inline_commands(doc)]
    return [c for b in blocks for c in shell_commands(b)]


def test_the_docs_show_commands_at_all() -> None:
    """Guards the parser of this file: if it found nothing, every other check would pass vacuously."""
    found = {resolve(argv)[2] for _, argv in documented_commands() if resolve(argv) is not None}  # type: ignore[index]
    assert {"paynet-node", "paynet-wallet", "scripts/testnet.py"} <= found, found


def test_documented_commands_exist_with_their_flags() -> None:
    problems = []
    for where, argv in documented_commands():
        try:
            found = resolve(argv)
        except AssertionError as e:
            problems.append(f"{where}: {e}")
            continue
        if found is not None:
            parser, args, shown = found
            problems += [f"{where}: {p}" for p in check_argv(parser, args, shown)]
    assert not problems, "\n".join(problems)


def test_make_targets_shown_exist() -> None:
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
    shown = {argv[1] for _, argv in documented_commands() if argv[0] == "make" and len(argv) > 1}
    assert shown and shown <= targets, shown - targets


def test_config_snippets_use_keys_the_config_accepts() -> None:
    """A ```toml block with a section of config.toml must validate against NodeConfig (unknown keys,
    wrong types)."""
    problems = []
    for b in all_blocks():
        if b.lang != "toml":
            continue
        try:
            doc = tomllib.loads(b.text.replace("...", '"..."'))
        except tomllib.TOMLDecodeError:
            continue
        if not doc or not set(doc) <= set(NodeConfig.model_fields):
            continue
        try:
            NodeConfig.model_validate(doc)
        except Exception as e:  # noqa: BLE001 -- the message is the finding
            problems.append(f"{b.where()}: {e}")
    assert not problems, "\n".join(problems)


def test_dotted_config_keys_in_the_docs_exist() -> None:
    """`api.trust_x_forwarded_for`-style mentions (in prose or code) name real config keys. `node.crt`
    (a file), `signer.py` (a module) and `consensus.round` (a /status field) look alike: for sections whose name is also a word
    in other mentions, only keys with an underscore count."""
    sections = {name: f.annotation for name, f in NodeConfig.model_fields.items() if not f.exclude}
    problems = []
    for doc in DOCS:
        for m in re.finditer(r"`([a-z0-9]+)\.([a-z_]+)(?:`| ?=)", doc.read_text()):
            model = sections.get(m.group(1))
            ambiguous = m.group(1) in ("node", "consensus", "signer") and "_" not in m.group(2)
            if model is not None and not ambiguous and m.group(2) not in model.model_fields:  # type: ignore[union-attr]
                problems.append(f"{doc.relative_to(ROOT)}: `{m.group(1)}.{m.group(2)}` is not a config key")
    assert not problems, "\n".join(problems)


# -- defaults stated in docs/api.md -------------------------------------------------------------------------


_UNITS = {"KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


def parse_value(text: str) -> Any:
    """'100', '10,000', '1 MiB', '0.5', 'false', '"127.0.0.1"' as the code would hold them."""
    text = text.strip().strip("`").strip()
    if text in ("true", "false"):
        return text == "true"
    m = re.fullmatch(r"(\d[\d,]*(?:\.\d+)?)\s*(KiB|MiB|GiB)?", text)
    if m is None:
        return text.strip('"')
    number = float(m.group(1).replace(",", "")) * _UNITS.get(m.group(2) or "", 1)
    return int(number) if number.is_integer() else number


def api_defaults_table() -> dict[str, str]:
    """field -> stated default, from the table of docs/api.md whose header is `| field | default | ...`.
    A row may name several fields (`a`, `b`) with as many comma-separated defaults."""
    lines = (ROOT / "docs" / "api.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"\|\s*field\s*\|\s*default\s*\|", line))
    stated: dict[str, str] = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        names = re.findall(r"`(\w+)`", cells[0])
        values = re.split(r",\s+", cells[1])
        assert len(names) == len(values), f"docs/api.md: {cells[0]} has {len(values)} defaults: {cells[1]}"
        stated.update(zip(names, values))
    return stated


def test_api_defaults_table_matches_the_code() -> None:
    stated = api_defaults_table()
    fields = ApiConfig.model_fields
    assert set(stated) == set(fields), (
        f"docs/api.md limits table: missing {sorted(set(fields) - set(stated))}, unknown {sorted(set(stated) - set(fields))}"
    )
    wrong = {k: (v, fields[k].default) for k, v in stated.items() if parse_value(v) != fields[k].default}
    assert not wrong, f"docs/api.md defaults (stated, code): {wrong}"


def test_defaults_stated_in_api_prose_match_the_code() -> None:
    """`field`, default X in sentences elsewhere in docs/api.md."""
    text = (ROOT / "docs" / "api.md").read_text()
    fields = ApiConfig.model_fields
    found = re.findall(r"`(\w+)`,? default (\d[\d,.]*(?: [KMG]iB)?|true|false)", text)
    wrong = {k: v for k, v in found if k in fields and parse_value(v) != fields[k].default}
    assert not wrong, f"docs/api.md prose defaults that differ from the code: {wrong}"


@pytest.mark.parametrize(
    ("text", "value"), [("100", 100), ("10,000", 10000), ("1 MiB", 1048576), ("64 KiB", 65536), ("false", False),
                        ("0.5", 0.5), ('"127.0.0.1"', "127.0.0.1")],
)
def test_parse_value(text: str, value: Any) -> None:
    assert parse_value(text) == value


def test_the_checker_catches_what_the_issue_found() -> None:
    """The checks fail on the mistakes issue 18 reported (a wrong flag, a missing subcommand)."""
    node_cli = cli_parser("paynet-node")
    assert check_argv(node_cli, ["ca", "issue", "--dir", "ca/", "--pubkey", "SUBST", "--name", "a", "--out", "x"],
                      "paynet-node") == []
    assert check_argv(node_cli, ["run", "--homedir", "x"], "paynet-node")
    assert check_argv(node_cli, ["start-node"], "paynet-node")
    assert check_argv(cli_parser("paynet-wallet"), ["--json", "tx", "abc", "--verbose"], "paynet-wallet")
    testnet = resolve(["python", "scripts/testnet.py", "status"])
    assert testnet is not None and check_argv(testnet[0], ["status", "--home", "x"], "testnet.py") == []
    with pytest.raises(AssertionError, match="does not exist"):
        resolve(["scripts/no_such_script.py"])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))


PRODUCTION_PACKAGES = ("chain", "consensus", "custody", "network", "node", "wallet")


def _module_map() -> dict[str, str]:
    """The rows of docs/architecture.md's "Module map": module path -> its one job."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("## Module map", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `([\w/]+\.py)` \| (.+?) \|$", section, flags=re.M))


def test_module_map_names_every_production_module_and_nothing_else() -> None:
    """A newcomer reads the map first: a module missing from it, or a row for a module that is gone,
    makes it lie."""
    modules = {
        str(p.relative_to(ROOT))
        for pkg in PRODUCTION_PACKAGES
        for p in (ROOT / pkg).rglob("*.py")
        if p.name != "__init__.py"
    }
    mapped = _module_map()
    assert sorted(modules - mapped.keys()) == [], "modules missing from docs/architecture.md's Module map"
    assert sorted(mapped.keys() - modules) == [], "Module map rows for modules that do not exist"
    assert all(job.strip() for job in mapped.values())

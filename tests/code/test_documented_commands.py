"""Every command and repository path quoted in README.md and docs/*.md exists.

Checked: every line of a shell code block (bash, sh, shell, console), and every inline code span or line
of another code block that starts with a known command or names a repository path.

- `make <target>`: the target is in the Makefile's database (`make -pRrq`);
- `dvc ...`: dvc's own argument parser accepts the command line (sub-commands and options);
- `-S key=value` (in a dvc command or a make variable such as ``GRID="-S ..."``): the dotted key is a
  key of params.yaml's schema and each of its comma-separated values passes the schema;
- `python <file>`, `bash <file>`, `source <file>`, `./<file>`: the file exists; `python -m <module>`:
  the module can be run; `jupyter <sub>`: `jupyter-<sub>` is installed; any other program is on PATH
  (this environment's bin first);
- a repository path (inside a command or on its own) exists, is declared by DVC (an output in dvc.yaml or
  a .dvc file, which `make setup` or `dvc repro` creates) or is git-ignored (a file the user or a tool
  creates, such as `.dvc/config.local` or `logs/`). `<placeholder>`s match anything; paths outside the
  repository (`../shared`) are not checked.
"""

from __future__ import annotations

import copy
import importlib.util
import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from fnmatch import fnmatch
from functools import cache
from pathlib import Path, PurePosixPath

import pytest
import yaml
from dvc.cli import DvcParserError
from dvc.cli import parse_args as parse_dvc_args
from ruamel.yaml import YAML

from rentprice.errors import ParamsError
from rentprice.io import read_yaml
from rentprice.params import validate_params
from tests.support import REPO_ROOT

SHELL_LANGUAGES = {"bash", "sh", "shell", "console", "zsh"}
#: Inline spans (and lines of non-shell blocks) starting with one of these are commands.
COMMAND_WORDS = {
    "make", "dvc", "python", "python3", "source", "bash", "sh", "jupyter", "git", "pip", "uv",
    "pytest", "ruff", "gunicorn", "flask", "curl",
}  # fmt: skip
SHELL_BUILTINS = {"cd", "export", "echo", "set", "unset", "exit", "true", "false", "test", "source", "."}
PATH_SUFFIXES = {
    ".py", ".md", ".yaml", ".yml", ".json", ".toml", ".lock", ".ipynb", ".parquet", ".sqlite",
    ".joblib", ".dvc", ".html", ".csv", ".txt", ".sh", ".cfg", ".ini", ".log", ".png", ".svg",
}  # fmt: skip
PLACEHOLDER = re.compile(r"<[A-Za-z][\w .-]*>")
WILDCARD = "__ANY__"
FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)[^\n]*\n(.*?)^\1\2\s*$", re.DOTALL | re.MULTILINE)
INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
SEPARATORS = {"&&", "||", "|", ";", "&", "(", ")"}
ASSIGNMENT = re.compile(r"^[A-Za-z_]\w*=")


@dataclass(frozen=True)
class Mention:
    """A command line or a path quoted in a markdown file."""

    where: str
    text: str
    is_command: bool


def doc_files() -> list[Path]:
    """README.md and every docs/*.md that exists now (docs are added over time)."""
    return [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


def shell_lines(block: str, console: bool) -> list[tuple[int, str]]:
    """Command lines of a shell block with their offsets, continuations joined, prompts removed."""
    lines, pending, start = [], "", 0
    for number, line in enumerate(block.splitlines()):
        if console and not pending:
            if not line.lstrip().startswith("$ "):
                continue
            line = line.lstrip()[2:]
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1].strip() + " "
            continue
        lines.append((start, pending + line.strip()))
        pending = ""
    return [
        (number, without_comment(line).strip()) for number, line in lines if without_comment(line).strip()
    ]


def words(text: str) -> list[str] | None:
    """Shell words of a command line, placeholders made wildcards; None when it is not shell syntax."""
    lexer = shlex.shlex(PLACEHOLDER.sub(WILDCARD, text), posix=True, punctuation_chars="();|&")
    lexer.whitespace_split = True
    try:
        return list(lexer)
    except ValueError:
        return None


def without_comment(line: str) -> str:
    """The line without a trailing shell comment (a ``#`` after whitespace, outside quotes)."""
    for mark in re.finditer(r"(?:^|\s)#", line):
        if words(line[: mark.start()]) is not None:
            return line[: mark.start()].rstrip()
    return line


def classify(text: str) -> bool | None:
    """True for a command, False for a lone path, None for anything else (prose, code, values)."""
    tokens = words(text)
    if not tokens:
        return None
    program = next((token for token in tokens if not ASSIGNMENT.match(token)), "")
    if program in COMMAND_WORDS:
        return True
    return False if len(tokens) == 1 and looks_like_path(tokens[0]) else None


def mentions(markdown: str, source: str) -> list[Mention]:
    """Every command line and path quoted in ``markdown``; ``source`` names the file in messages."""
    found = []

    def line_of(offset: int) -> int:
        return markdown.count("\n", 0, offset) + 1

    for block in FENCE.finditer(markdown):
        language, body = block.group(3).lower(), block.group(4)
        first = line_of(block.start(4))
        if language in SHELL_LANGUAGES:
            for number, line in shell_lines(body, console=language == "console"):
                found.append(Mention(f"{source}:{first + number}", line, True))
        else:
            for number, line in enumerate(body.splitlines()):
                text = without_comment(line).strip()
                kind = classify(text)
                if kind is not None:
                    found.append(Mention(f"{source}:{first + number}", text, kind))
    prose = FENCE.sub(lambda block: "\n" * block.group(0).count("\n"), markdown)
    for span in INLINE.finditer(prose):
        text = span.group(1).strip().removeprefix("$ ")
        kind = classify(text)
        if kind is not None:
            found.append(Mention(f"{source}:{prose.count(chr(10), 0, span.start()) + 1}", text, kind))
    return found


def looks_like_path(token: str) -> bool:
    """A token that names a file or directory of the repository (not a URL, option, value or prose)."""
    if not token or re.search(r"\s|://|[=(),;:'\"@$~…]", token) or token[0] in "-/":
        return False
    path = PurePosixPath(token.removeprefix("./"))
    if path.parts[0] == "..":
        return False
    if "/" in token:
        return (REPO_ROOT / path.parts[0]).exists() or path.suffix in PATH_SUFFIXES
    return re.fullmatch(r"[\w.*-]+", token) is not None and path.suffix in PATH_SUFFIXES


@cache
def dvc_declared() -> tuple[str, ...]:
    """Paths DVC creates: stage outputs, metrics and plots in dvc.yaml, and outputs of .dvc files."""
    declared = []
    pipeline = read_yaml(REPO_ROOT / "dvc.yaml") or {}
    for stage in (pipeline.get("stages") or {}).values():
        for out in [*stage.get("outs", []), *stage.get("metrics", []), *stage.get("plots", [])]:
            declared.append(next(iter(out)) if isinstance(out, dict) else out)
    declared += [name for name in pipeline.get("metrics", []) if isinstance(name, str)]
    for tracker in git_files("*.dvc"):
        text = (REPO_ROOT / tracker).read_text(encoding="utf-8")
        for out in (yaml.safe_load(text) or {}).get("outs", []):
            declared.append((PurePosixPath(tracker).parent / out["path"]).as_posix())
    return tuple(declared)


def git_files(*patterns: str) -> list[str]:
    """Git-tracked files (matching ``patterns``, if any), relative to the repository root."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--", *patterns], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    return [name for name in listed.stdout.split("\0") if name]


@cache
def tracked_names() -> frozenset[str]:
    """Base names of git-tracked files and DVC-declared paths."""
    return frozenset(PurePosixPath(name).name for name in [*git_files(), *dvc_declared()])


def git_ignored(path: str) -> bool:
    """Whether git ignores ``path`` (a local or generated file, created by the user or a tool)."""
    result = subprocess.run(["git", "check-ignore", "-q", "--", path], cwd=REPO_ROOT, check=False)
    return result.returncode == 0


def path_problem(token: str) -> str | None:
    """Why a repository path quoted in the docs does not resolve, or None when it does."""
    path = token.removeprefix("./")
    if "/" not in path.rstrip("/"):
        name = path.rstrip("/")
        pattern = name.replace(WILDCARD, "*")
        if (REPO_ROOT / name).exists() or any(fnmatch(known, pattern) for known in tracked_names()):
            return None
        return f"no file named {token!r} in the repository"
    pattern = path.rstrip("/").replace(WILDCARD, "*")
    if "*" in pattern:
        if any(REPO_ROOT.glob(pattern)) or any(fnmatch(out, pattern) for out in dvc_declared()):
            return None
    elif (
        (REPO_ROOT / pattern).exists()
        or git_ignored(path)
        or any(
            pattern == out or out.startswith(f"{pattern}/") or pattern.startswith(f"{out}/")
            for out in dvc_declared()
        )
    ):
        return None
    return f"path {token!r} does not exist, is not a DVC output and is not git-ignored"


@cache
def make_targets() -> frozenset[str]:
    """Targets in the Makefile's database (includes and generated rules resolved by make itself)."""
    database = subprocess.run(
        ["make", "-pRrq", "-f", "Makefile"], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    ).stdout
    targets, not_a_target = set(), False
    for line in database.splitlines():
        if line.startswith("# Not a target"):
            not_a_target = True
            continue
        match = re.match(r"^([^\s#=:][^=:]*?):(?![=:])", line)
        if match and not not_a_target:
            targets.update(name for name in match.group(1).split() if not name.startswith("."))
        not_a_target = False
    return frozenset(targets)


@cache
def dvc_problem(args: tuple[str, ...]) -> str | None:
    """Why dvc would reject this command line (unknown sub-command or option), or None."""
    try:
        parse_dvc_args(list(args))
    except (DvcParserError, SystemExit):  # dvc prints its usage: the test output shows it on failure
        return f"dvc rejects `dvc {' '.join(args)}`"
    return None


def python_module_problem(module: str) -> str | None:
    """Why `python -m <module>` would fail to start, or None."""
    spec = importlib.util.find_spec(module)
    if spec is None:
        return f"no module {module!r} for `python -m`"
    if spec.submodule_search_locations is not None and importlib.util.find_spec(f"{module}.__main__") is None:
        return f"package {module!r} has no __main__, `python -m {module}` fails"
    return None


def program_problem(program: str) -> str | None:
    """Why ``program`` cannot be run from the repository root with this environment, or None."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    if program in SHELL_BUILTINS or shutil.which(program, path=search):
        return None
    return f"program {program!r} is not installed"


def simple_commands(tokens: list[str]) -> list[list[str]]:
    """Split shell words at `&&`, `|`, `;` ..., dropping leading VAR=value and redirections."""
    commands, current, skip_next = [], [], False
    for token in tokens:
        if token in SEPARATORS:
            commands.append(current)
            current = []
        elif skip_next:
            skip_next = False
        elif re.match(r"^\d*[<>]", token):
            skip_next = re.fullmatch(r"\d*[<>]+&?", token) is not None
        elif current or not ASSIGNMENT.match(token):
            current.append(token)
    return [command for command in [*commands, current] if command]


def command_problems(argv: list[str]) -> list[str]:
    """Why one simple command would not run as documented (empty when it would)."""
    program, args = argv[0], argv[1:]
    positional = [arg for arg in args if not arg.startswith("-")]
    problems = []
    if program == "make":
        problems += [
            f"no make target {target!r}"
            for target in positional
            if "=" not in target and WILDCARD not in target and target not in make_targets()
        ]
    elif program == "dvc" and args:
        problems.append(dvc_problem(tuple(args)))
    elif program in {"python", "python3"} and "-m" in args:
        module = args[args.index("-m") + 1] if args.index("-m") + 1 < len(args) else ""
        problems.append(python_module_problem(module) if WILDCARD not in module else None)
    elif program in {"python", "python3", "bash", "sh", "source", "."} and positional and "-c" not in args:
        problems.append(path_problem(positional[0]))
    elif program == "jupyter" and positional:
        problems.append(program_problem(f"jupyter-{positional[0]}"))
    elif "/" in program:
        problems.append(path_problem(program))
    else:
        problems.append(program_problem(program))
    if program in {"dvc", "make"}:
        problems += set_param_problems(args)
    problems += [path_problem(arg) for arg in args if looks_like_path(arg)]
    return [problem for problem in problems if problem]


def set_param_problems(args: list[str]) -> list[str]:
    """Why a ``-S key=value`` of a dvc command or a make variable (``GRID="-S k=v1,v2"``) would fail.

    A dotted key must be a key of params.yaml and each comma-separated value, read as YAML as DVC
    reads it, must pass the schema in the committed params; an undotted ``key=value`` is prose.
    """
    tokens = [
        word
        for arg in args
        for word in (shlex.split(arg.split("=", 1)[1]) if re.match(r"^[A-Z_]+=", arg) else [arg])
    ]
    committed = read_yaml(REPO_ROOT / "params.yaml")
    problems = []
    for flag, setting in itertools.pairwise(tokens):
        if flag not in {"-S", "--set-param"} or "=" not in setting or WILDCARD in setting:
            continue
        key, values = setting.split("=", 1)
        if "." not in key or key.startswith(("+", "~")):  # prose, or DVC's syntax to add or remove a key
            continue
        for value in values.split(","):
            params = copy.deepcopy(committed)
            *parents, last = key.split(".")
            node = params
            for part in parents:
                node = node.get(part) if isinstance(node, dict) else None
            if not isinstance(node, dict) or last not in node:
                problems.append(f"-S {setting}: no key {key!r} in params.yaml")
                break
            node[last] = YAML(typ="safe", pure=True).load(value)
            try:
                validate_params(params, "params.yaml")
            except ParamsError as error:
                problems.append(f"-S {setting}: {error}")
    return problems


def mention_problems(mention: Mention) -> list[str]:
    """Problems of one quoted command line or path, each prefixed with where it is quoted."""
    if not mention.is_command:
        problem = path_problem(mention.text)
        return [f"{mention.where}: `{mention.text}`: {problem}"] if problem else []
    tokens = words(mention.text)
    if tokens is None:
        return [f"{mention.where}: `{mention.text}`: not a valid shell line"]
    return [
        f"{mention.where}: `{mention.text}`: {problem}"
        for argv in simple_commands(tokens)
        for problem in dict.fromkeys(command_problems(argv))
    ]


def markdown_problems(markdown: str, source: str) -> list[str]:
    """Every problem with the commands and paths quoted in one markdown text."""
    return [problem for mention in mentions(markdown, source) for problem in mention_problems(mention)]


@pytest.mark.parametrize("doc", doc_files(), ids=lambda path: path.relative_to(REPO_ROOT).as_posix())
def test_every_documented_command_and_path_exists(doc):
    assert markdown_problems(doc.read_text(encoding="utf-8"), doc.name) == []


def test_every_notebook_markdown_command_and_path_exists():
    for notebook in sorted((REPO_ROOT / "notebook").glob("*.ipynb")):
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
        markdown = "\n\n".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "markdown")
        assert markdown_problems(markdown, notebook.name) == []


def test_the_default_sweep_grid_sets_real_params():
    grid = re.search(r"^GRID \?= (.+)$", (REPO_ROOT / "Makefile").read_text(), re.MULTILINE)
    assert grid and "-S" in grid.group(1)
    assert set_param_problems([f"GRID={grid.group(1)}"]) == []


def test_readme_commands_are_all_found():
    texts = {mention.text for mention in mentions((REPO_ROOT / "README.md").read_text(), "README.md")}
    assert {"make setup", "make test", "dvc repro", "dvc metrics show", "params.yaml"} <= texts


BAD_DOC = """
# A page with mistakes

```bash
make tset                         # typo in a target
dvc frobnicate
dvc exp run --no-such-option
python stages/nope.py --help
python -m nbclient notebook/model_baseline.ipynb
bench/nope.sh
jupyter nope notebook/model_baseline.ipynb
no-such-program --version
RENTPRICE_DB_URL=x dvc repro && cat data/nope/listings.parquet
dvc exp run -S train.max_features=0.5
make sweep GRID="-S train.catboost.depth=4,99"
```

Run `make lnit` and read `metrics/nope.json` or `nope.yaml`.
"""

GOOD_DOC = """
```console
$ make test
output line, not a command
$ dvc exp run -S train.n_estimators=500 \\
    -S train.random_forest.max_features=0.5
```

```bash
RENTPRICE_DB_URL='sqlite:///x.sqlite' dvc repro --force collect   # a comment with `backticks`
python stages/<name>.py --help
dvc remote add --local -d mine s3://bucket/path && dvc push
```

```python
print("not checked: python code")
```

See `stages/collect.py`, `metrics/eval/plots/custom/*.json`, `data/raw/listings.parquet`, `logs/`,
`.dvc/config.local`, `../shared/dvc-storage`, `schema.py`, `log(rent)`, `collect.db_url`, `rent/area`.
"""


def test_a_bad_command_or_path_is_reported():
    problems = markdown_problems(BAD_DOC, "bad.md")
    expected = [
        "bad.md:5: `make tset`: no make target 'tset'",
        "bad.md:6: `dvc frobnicate`: dvc rejects",
        "bad.md:7: `dvc exp run --no-such-option`: dvc rejects",
        "bad.md:8: `python stages/nope.py --help`: path 'stages/nope.py' does not exist",
        "bad.md:9: `python -m nbclient notebook/model_baseline.ipynb`: package 'nbclient' has no __main__",
        "bad.md:10: `bench/nope.sh`: path 'bench/nope.sh' does not exist",
        "bad.md:11: `jupyter nope notebook/model_baseline.ipynb`: program 'jupyter-nope' is not installed",
        "bad.md:12: `no-such-program --version`: program 'no-such-program' is not installed",
        "bad.md:13: `RENTPRICE_DB_URL=x dvc repro && cat data/nope/listings.parquet`: path",
        "bad.md:14: `dvc exp run -S train.max_features=0.5`: -S train.max_features=0.5: no key",
        'bad.md:15: `make sweep GRID="-S train.catboost.depth=4,99"`: -S train.catboost.depth=4,99: '
        "params.yaml: train.catboost.depth: expected an integer",
        "bad.md:18: `make lnit`: no make target 'lnit'",
        "bad.md:18: `metrics/nope.json`: path 'metrics/nope.json' does not exist",
        "bad.md:18: `nope.yaml`: no file named 'nope.yaml'",
    ]
    assert len(problems) == len(expected), "\n".join(problems)
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(start), problem


def test_valid_commands_and_paths_pass():
    found = mentions(GOOD_DOC, "good.md")
    assert [mention.text for mention in found if mention.is_command][:2] == [
        "make test",
        "dvc exp run -S train.n_estimators=500 -S train.random_forest.max_features=0.5",
    ]
    assert markdown_problems(GOOD_DOC, "good.md") == []


LINK = re.compile(r"\]\(([^)\s]+)\)")


def link_problems(doc: Path) -> list[str]:
    """Relative markdown links of ``doc`` whose file (or heading anchor) does not exist."""
    problems = []
    for target in LINK.findall(doc.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        if not file.is_file():
            problems.append(f"{doc.name}: link to {target}: no such file")
        elif anchor and anchor not in heading_anchors(file):
            problems.append(f"{doc.name}: link to {target}: no such heading")
    return problems


def heading_anchors(markdown: Path) -> set[str]:
    """GitHub's anchors of a markdown file's headings: lower case, punctuation dropped, spaces as -."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", markdown.read_text(encoding="utf-8"), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("doc", doc_files(), ids=lambda path: path.relative_to(REPO_ROOT).as_posix())
def test_every_relative_link_resolves(doc):
    assert link_problems(doc) == []


def test_a_broken_link_is_reported(tmp_path):
    (tmp_path / "target.md").write_text("# A heading\n")
    doc = tmp_path / "doc.md"
    doc.write_text("[ok](target.md#a-heading) [web](https://x.org) [gone](nope.md) [bad](target.md#nope)\n")
    assert link_problems(doc) == [
        "doc.md: link to nope.md: no such file",
        "doc.md: link to target.md#nope: no such heading",
    ]


def test_the_readme_stays_a_newcomers_page():
    assert len((REPO_ROOT / "README.md").read_bytes()) <= 8 * 1024

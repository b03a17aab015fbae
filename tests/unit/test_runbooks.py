"""Every CloudWatch alarm the Terraform defines leads to a usable runbook (issue 7, item 6).

For each `aws_cloudwatch_metric_alarm` in terraform/modules/*/main.tf (its description resolved through
`for_each = local.X` when it comes from a local map, as the lambda_function module's do):
- the description ends with `Runbook: docs/runbooks/<file>.md` and stays under CloudWatch's 1024
  characters with every interpolation at its longest;
- that runbook exists, names the alarm by its name pattern (`<prefix>-api-5xx`, `<function>-errors`: the
  alarm_name with each interpolation written as a `<placeholder>`), and gives at least one
  `paystream-ops` command or an explicit "no command: ..." line;
- docs/runbooks/README.md (the index) lists every runbook file, and every relative link in the runbooks
  resolves.
Every `paystream-ops ...` a runbook shows in code (inline or fenced) must be a command, subcommand and
options that `paystream_ops.cli.parser()` knows: a runbook never tells someone at 3 a.m. to run something
that does not exist.

The HCL is read with a small scanner (strings, interpolations, comments and heredocs aware) rather than
python-hcl2, which returns `for_each`/conditional expressions as opaque strings.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from paystream_ops.cli import parser

ROOT = Path(__file__).resolve().parents[2]
MODULES = ROOT / "terraform" / "modules"
RUNBOOKS = ROOT / "docs" / "runbooks"
INDEX = RUNBOOKS / "README.md"

ALARM_HEADER = re.compile(r'^resource\s+"aws_cloudwatch_metric_alarm"\s+"([\w-]+)"\s*\{', re.MULTILINE)
RUNBOOK_REFERENCE = re.compile(r"Runbook: (docs/runbooks/([a-z0-9][a-z0-9-]*\.md))$")
INTERPOLATION = re.compile(r"\$\{[^{}]*\}")
PLACEHOLDER = r"<[^<>\s`]+>"
NO_COMMAND = re.compile(r"^\s*(?:[-*]\s+|\d+\.\s+)?(?:\S.*\s)?no command:\s*\S", re.IGNORECASE | re.MULTILINE)
# CloudWatch's limit on AlarmDescription; an interpolation counts as the longest name it can hold
# (a Lambda function name: 64 characters, longer than any prefix, queue name or number here).
DESCRIPTION_LIMIT = 1024
LONGEST_INTERPOLATION = 64


# ---------------------------------------------------------------------------------------- HCL scanning


def _skip_heredoc(text: str, i: int) -> int | None:
    match = re.compile(r"<<-?([A-Za-z_][A-Za-z0-9_]*)\n").match(text, i)
    if not match:
        return None
    marker = match.group(1)
    end = re.compile(rf"^\s*{marker}\s*$", re.MULTILINE).search(text, match.end())
    assert end, f"unterminated heredoc {marker}"
    return end.end()


def closing(text: str, start: int) -> int:
    """Index of the `}` or `]` closing the bracket at `start`, skipping strings, `${...}`, comments, heredocs."""
    pairs = {"{": "}", "[": "]", "(": ")"}
    stack = [pairs[text[start]]]
    i = start + 1
    while i < len(text):
        char, top = text[i], stack[-1]
        if top == '"':
            if char == "\\":
                i += 2
                continue
            if char == '"':
                stack.pop()
            elif text.startswith("${", i) or text.startswith("%{", i):
                stack.append("}")
                i += 2
                continue
        elif char == "#" or text.startswith("//", i):
            newline = text.find("\n", i)
            i = len(text) if newline < 0 else newline
            continue
        elif text.startswith("/*", i):
            i = text.index("*/", i) + 2
            continue
        elif text.startswith("<<", i) and (after := _skip_heredoc(text, i)) is not None:
            i = after
            continue
        elif char == '"':
            stack.append('"')
        elif char in pairs:
            stack.append(pairs[char])
        elif char == top:
            stack.pop()
            if not stack:
                return i
        i += 1
    raise AssertionError(f"unbalanced bracket at offset {start}")


def _string_end(text: str, start: int) -> int:
    """Index of the `"` closing the string literal opening at `start`."""
    i = start + 1
    depth = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if depth == 0 and text[i] == '"':
            return i
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if depth and text[i] == "}":
            depth -= 1
        elif depth and text[i] == '"':
            i = _string_end(text, i)
        i += 1
    raise AssertionError(f"unterminated string at offset {start}")


def attributes(body: str) -> dict[str, str]:
    """The top-level `name = value` attributes of a block or object body. A string literal's value is its
    raw content (interpolations kept, quotes removed); any other value is its expression text."""
    found: dict[str, str] = {}
    attribute = re.compile(r"^[ \t]*([A-Za-z_][\w-]*)[ \t]*=[ \t]*", re.MULTILINE)
    block = re.compile(r"^[ \t]*[A-Za-z_][\w-]*(?:[ \t]+\"[^\"]*\")*[ \t]*\{", re.MULTILINE)
    i = 0
    while i < len(body):
        match_attribute, match_block = attribute.match(body, i), block.match(body, i)
        if match_block and not match_attribute:  # a nested block: not an attribute of this body
            i = closing(body, match_block.end() - 1) + 1
            continue
        if match_attribute:
            start = match_attribute.end()
            if body.startswith('"', start):
                end = _string_end(body, start)
                found[match_attribute.group(1)] = body[start + 1:end]
                i = end + 1
                continue
            end, j = None, start
            while j < len(body) and body[j] != "\n":  # the expression runs to the end of its line...
                if body[j] in "{[(":  # ...past any bracket it opens
                    j = closing(body, j)
                elif body[j] == '"':
                    j = _string_end(body, j)
                elif body[j] == "#":
                    end = j
                    break
                j += 1
            found[match_attribute.group(1)] = body[start:end if end is not None else j].strip()
            i = j
            continue
        newline = body.find("\n", i)
        i = len(body) if newline < 0 else newline + 1
    return found


def object_entries(expression: str) -> dict[str, dict[str, str]]:
    """`{ key = { attr = ... } ... }` (or `cond ? { ... } : {}`: its first object) as key -> attributes."""
    start = expression.index("{")
    body = expression[start + 1:closing(expression, start)]
    entries = {}
    for key, value in attributes(body).items():
        assert value.startswith("{"), f"{key} is not an object: {value[:40]}"
        entries[key] = attributes(value[1:closing(value, 0)])
    return entries


def locals_of(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for match in re.finditer(r"^locals\s*\{", text, re.MULTILINE):
        values.update(attributes(text[match.end():closing(text, match.end() - 1)]))
    return values


@dataclass(frozen=True)
class Alarm:
    module: str
    resource: str
    key: str | None  # the for_each key when it is known statically
    name: str  # alarm_name, interpolations kept
    description: str

    @property
    def id(self) -> str:
        return f"{self.module}.{self.resource}" + (f"[{self.key}]" if self.key else "")


def alarms_in(main_tf: Path) -> list[Alarm]:
    text = main_tf.read_text()
    module_locals = locals_of(text)
    found = []
    for header in ALARM_HEADER.finditer(text):
        body = attributes(text[header.end():closing(text, header.end() - 1)])
        name, description = body["alarm_name"], body["alarm_description"]
        for_each = body.get("for_each", "")
        local = re.fullmatch(r"local\.(\w+)", for_each)
        if local and (name + description).count("each."):
            for key, value in object_entries(module_locals[local.group(1)]).items():
                def resolve(template: str) -> str:
                    template = template.replace("${each.key}", key)
                    return re.sub(r"^each\.value\.(\w+)$", lambda m: value[m.group(1)], template)

                found.append(Alarm(main_tf.parent.name, header.group(1), key, resolve(name), resolve(description)))
        else:
            found.append(Alarm(main_tf.parent.name, header.group(1), None, name, description))
    return found


ALARMS = [alarm for main_tf in sorted(MODULES.glob("*/main.tf")) for alarm in alarms_in(main_tf)]


def runbook_of(alarm: Alarm) -> Path:
    match = RUNBOOK_REFERENCE.search(alarm.description)
    assert match, f"{alarm.id}: the description does not end with 'Runbook: docs/runbooks/<file>.md': {alarm.description!r}"
    return ROOT / match.group(1)


def name_pattern(alarm_name: str) -> re.Pattern:
    """The alarm name as runbooks write it: each interpolation a <placeholder>, the rest literal."""
    parts = INTERPOLATION.split(alarm_name)
    return re.compile(PLACEHOLDER.join(re.escape(part) for part in parts))


# ---------------------------------------------------------------------------------------- markdown


def code_spans(markdown: str) -> list[str]:
    """Fenced code blocks' lines and inline code spans."""
    fenced = re.compile(r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```", re.MULTILINE | re.DOTALL)
    pieces = [line for block in fenced.findall(markdown) for line in _joined(block).splitlines()]
    pieces += re.findall(r"`([^`\n]+)`", fenced.sub("", markdown))
    return pieces


def _joined(block: str) -> str:
    return re.sub(r"\\\n\s*", " ", block)  # shell line continuations


@dataclass(frozen=True)
class Invocation:
    words: tuple[str, ...]  # after `paystream-ops`, up to the end of the shell command

    def __str__(self) -> str:
        return "paystream-ops " + " ".join(self.words)


def invocations(markdown: str) -> list[Invocation]:
    found = []
    for piece in code_spans(markdown):
        for match in re.finditer(r"(?<![\w/.-])paystream-ops\b(.*)", piece):
            command = re.split(r"\s(?:#|\|\||&&|\||;)\s?|;", match.group(1))[0]
            words = tuple(command.split())
            if words:
                found.append(Invocation(words))
    return found


def _subcommands(command_parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in command_parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(command_parser: argparse.ArgumentParser) -> dict[str, bool]:
    """Option string -> whether it takes a value."""
    return {option: action.nargs != 0 for action in command_parser._actions for option in action.option_strings}


def check(invocation: Invocation, main: argparse.ArgumentParser) -> str | None:
    """Why the invocation is not one the CLI knows, or None."""
    words = list(invocation.words)
    global_options = _options(main)
    while words and words[0].startswith("-"):  # global options before the command
        option = words.pop(0).split("=", 1)[0]
        if option not in global_options:
            return f"unknown global option {option}"
        if global_options[option] and "=" not in option and words:
            words.pop(0)
    if not words:
        return "no command"
    commands = _subcommands(main)
    if words[0] not in commands:
        return f"unknown command {words[0]!r} (known: {', '.join(sorted(commands))})"
    parsers = [commands[words.pop(0)]]
    nested = _subcommands(parsers[0])
    if nested:
        if not words:
            return None  # the command group named on its own (`paystream-ops dlq`), nothing to run
        names = words.pop(0).split("|") if not words[0].startswith("-") else []
        if not names or any(name not in nested for name in names):
            return f"unknown subcommand {names} (known: {', '.join(sorted(nested))})"
        parsers = [nested[name] for name in names]
    for word in words:
        if word.startswith("--"):
            option = word.split("=", 1)[0]
            for command_parser in parsers:
                if option not in _options(command_parser) and option not in global_options:
                    return f"unknown option {option} for {command_parser.prog}"
    return None


RUNBOOK_FILES = sorted(p for p in RUNBOOKS.glob("*.md") if p.name != INDEX.name)


# ---------------------------------------------------------------------------------------- tests


def test_every_alarm_block_is_found() -> None:
    """The scanner finds each alarm resource (a block it skipped would escape every check below)."""
    for main_tf in MODULES.glob("*/main.tf"):
        headers = {m.group(1) for m in ALARM_HEADER.finditer(main_tf.read_text())}
        assert {a.resource for a in ALARMS if a.module == main_tf.parent.name} == headers
    assert {a.id for a in ALARMS} >= {
        "lambda_function.function[errors]", "lambda_function.function[throttles]", "api.server_errors",
        "api.latency", "alarms.dlq", "alarms.iterator_age", "alarms.breaker_open"}


@pytest.mark.parametrize("alarm", ALARMS, ids=lambda a: a.id)
def test_alarm_description_names_an_existing_runbook(alarm: Alarm) -> None:
    runbook = runbook_of(alarm)
    assert runbook.is_file(), f"{alarm.id}: {runbook.relative_to(ROOT)} does not exist"
    longest = INTERPOLATION.sub("x" * LONGEST_INTERPOLATION, alarm.description)
    assert "each." not in longest and "${" not in longest, f"{alarm.id}: unresolved description {alarm.description!r}"
    assert len(longest) <= DESCRIPTION_LIMIT, f"{alarm.id}: description may reach {len(longest)} characters"


@pytest.mark.parametrize("alarm", ALARMS, ids=lambda a: a.id)
def test_runbook_names_the_alarm_and_what_to_run(alarm: Alarm) -> None:
    runbook = runbook_of(alarm)
    text = runbook.read_text()
    pattern = name_pattern(alarm.name)
    assert pattern.search(text), f"{runbook.name} does not name the alarm {alarm.name!r} (as {pattern.pattern})"
    assert invocations(text) or NO_COMMAND.search(text), \
        f"{runbook.name} gives no `paystream-ops` command and no 'no command: ...' line"


def test_index_lists_every_runbook() -> None:
    index = INDEX.read_text()
    referenced = {runbook_of(alarm).name for alarm in ALARMS}
    listed = set(re.findall(r"\]\(([a-z0-9-]+\.md)\)", index))
    missing = ({p.name for p in RUNBOOK_FILES} | referenced) - listed
    assert not missing, f"docs/runbooks/README.md does not link {sorted(missing)}"


@pytest.mark.parametrize("markdown", [INDEX, *RUNBOOK_FILES], ids=lambda p: p.name)
def test_relative_links_resolve(markdown: Path) -> None:
    for target in re.findall(r"\]\((?!https?:|#|mailto:)([^)#\s]+)", markdown.read_text()):
        assert (markdown.parent / target).exists(), f"{markdown.name} links to {target}, which does not exist"


@pytest.mark.parametrize("markdown", [INDEX, *RUNBOOK_FILES], ids=lambda p: p.name)
def test_every_paystream_ops_command_shown_exists(markdown: Path) -> None:
    main = parser()
    problems = [f"`{invocation}`: {why}" for invocation in invocations(markdown.read_text())
                if (why := check(invocation, main)) is not None]
    assert not problems, f"{markdown.name}:\n" + "\n".join(problems)


# ---------------------------------------------------------------------------------------- the checks' own tests


def test_command_check_refuses_what_the_cli_does_not_know() -> None:
    main = parser()
    assert check(Invocation(("--env", "prod", "dlq", "redrive", "process-payment", "--rate", "5")), main) is None
    assert check(Invocation(("dlq", "list|peek",)), main) is None
    assert "unknown command" in check(Invocation(("drain", "--all")), main)
    assert "unknown subcommand" in check(Invocation(("dlq", "drain", "x")), main)
    assert "unknown option --force" in check(Invocation(("dlq", "purge", "x", "--force")), main)
    assert "unknown global option" in check(Invocation(("--region", "x", "dlq", "list")), main)
    assert invocations("run `paystream-ops --env prod dlq list # all` then `.venv/bin/paystream-ops`") == \
        [Invocation(("--env", "prod", "dlq", "list"))]
    assert invocations("```sh\npaystream-ops dlq redrive q \\\n  --rate 2\n```") == \
        [Invocation(("dlq", "redrive", "q", "--rate", "2"))]


def test_scanner_resolves_descriptions_from_a_local_map(tmp_path: Path) -> None:
    module = tmp_path / "m"
    module.mkdir()
    (module / "main.tf").write_text('''
locals {
  # a comment with a brace {
  things = var.enabled ? {
    errors = {
      metric_name = "Errors"
      description = "${var.name} failed {sometimes}. Runbook: docs/runbooks/function-errors.md"
    }
  } : {}
}

resource "aws_cloudwatch_metric_alarm" "function" {
  for_each          = local.things
  alarm_name        = "${var.name}-${each.key}"
  alarm_description = each.value.description
  lifecycle {
    precondition {
      condition     = true
      error_message = "x"
    }
  }
}
''')
    [alarm] = alarms_in(module / "main.tf")
    assert (alarm.key, alarm.name) == ("errors", "${var.name}-errors")
    assert runbook_of(alarm).name == "function-errors.md"
    assert name_pattern(alarm.name).search("see `<function>-errors`")
    assert not name_pattern(alarm.name).search("see `<function>-throttles`")

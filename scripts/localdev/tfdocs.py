"""The Inputs and Outputs tables of every Terraform module's README, generated from the module itself.

    python -m localdev tfdocs           # rewrite the tables in terraform/modules/*/README.md
    python -m localdev tfdocs --check   # exit 1, one line per README that is missing, unmarked or stale

terraform-docs does the same, but it is a prebuilt binary this project cannot install, so this reads
each module's `variables.tf` and `outputs.tf` with python-hcl2 and writes, between the markers
`<!-- BEGIN_TF_DOCS -->` and `<!-- END_TF_DOCS -->`, an Inputs table (name, description, type,
default, required) and an Outputs table (name, description). Everything outside the markers is the
module's prose (why it exists, an example call, its design choices) and is never touched, so a README
is written by hand once and its tables can never drift from the code (tests/unit/test_module_docs.py).

Variables and outputs are listed in the order they are declared: modules group them on purpose.
Descriptions are the `description` strings, on one line; a sensitive output says so.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MODULES_DIR = PROJECT_ROOT / "terraform" / "modules"
BEGIN = "<!-- BEGIN_TF_DOCS -->"
END = "<!-- END_TF_DOCS -->"
REGENERATE = "python -m localdev tfdocs"

# Only variables.tf and outputs.tf are parsed (main.tf holds expressions the docs never need, so a
# parser gap there cannot break them); a declaration elsewhere would be left out, so it is refused.
_DECLARATION = re.compile(r'^\s*(variable|output)\s+"([^"]+)"', re.MULTILINE)
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


@dataclass(frozen=True)
class Input:
    name: str
    description: str
    type: str
    default: str | None  # the default as HCL/JSON text; None when the variable is required

    @property
    def required(self) -> bool:
        return self.default is None


@dataclass(frozen=True)
class Output:
    name: str
    description: str
    sensitive: bool


class ModuleDocsError(Exception):
    """A module whose README cannot be generated (no README, no markers, a declaration out of place)."""


# --- reading the module --------------------------------------------------------------------------


def _unescape(text: str) -> str:
    """The value of an HCL quoted string's body: escapes resolved, `$${`/`%%{` back to `${`/`%{`."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            marker = text[i + 1]
            if marker in _ESCAPES:
                out.append(_ESCAPES[marker])
                i += 2
                continue
            width = {"u": 4, "U": 8}.get(marker)
            digits = text[i + 2 : i + 2 + width] if width else ""
            if width and len(digits) == width and all(c in "0123456789abcdefABCDEF" for c in digits):
                out.append(chr(int(digits, 16)))
                i += 2 + width
                continue
        out.append(char)
        i += 1
    return "".join(out).replace("$${", "${").replace("%%{", "%{")


def _is_literal(value: str) -> bool:
    return len(value) >= 2 and value.startswith('"') and value.endswith('"')


def _is_expression(value: str) -> bool:
    return value.startswith("${") and value.endswith("}")


def _label(key: str) -> str:
    """A block label or object key as written (`"name"` or `name`) → its name."""
    return _unescape(key[1:-1]) if _is_literal(key) else key


def _text(value: Any) -> str:
    """A string attribute (description): its value, on one line."""
    if value is None:
        return ""
    text = _unescape(value[1:-1]) if isinstance(value, str) and _is_literal(value) else str(value)
    return " ".join(text.split())


def _type(value: Any) -> str:
    """A `type` constraint as Terraform spells it (`any` when there is none)."""
    if value is None:
        return "any"
    text = str(value)
    return text[2:-1] if _is_expression(text) else text


def _literal(value: Any) -> Any:
    """A parsed default → the plain value it stands for (expressions such as `1.5e3` kept as text)."""
    if isinstance(value, dict):
        return {_label(k): _literal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_literal(v) for v in value]
    if isinstance(value, str):
        if _is_literal(value):
            return _unescape(value[1:-1])
        if _is_expression(value):
            return _Raw(value[2:-1])
    return value


class _Raw(str):
    """HCL text that is not a string literal (rendered without quotes)."""


def _default(value: Any) -> str:
    """A default in the table: JSON (which Terraform also reads as HCL); an expression as its HCL text."""
    return _render(_literal(value))


def _render(value: Any) -> str:
    if isinstance(value, _Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k, ensure_ascii=False)}: {_render(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_render(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _blocks(parsed: dict[str, Any], kind: str) -> list[tuple[str, dict[str, Any]]]:
    blocks: list[tuple[str, dict[str, Any]]] = []
    for entry in parsed.get(kind, []):
        for label, body in entry.items():
            blocks.append((_label(label), body or {}))
    return blocks


def _load(path: Path) -> dict[str, Any]:
    import hcl2
    from hcl2.utils import SerializationOptions

    # Quotes kept (strip_string_quotes=False): a string literal is then told from an expression or a
    # type keyword, and escapes are resolved once, by _unescape.
    options = SerializationOptions(
        with_comments=False, explicit_blocks=False, preserve_heredocs=False, strip_string_quotes=False
    )
    if not path.exists():
        return {}
    try:
        return hcl2.loads(path.read_text(), serialization_options=options)
    except Exception as exc:  # lark raises several unrelated types; the path is what the reader needs
        raise ModuleDocsError(f"{path}: cannot parse: {exc}".splitlines()[0]) from exc


def read_module(module_dir: Path) -> tuple[list[Input], list[Output]]:
    """The module's inputs (from variables.tf) and outputs (from outputs.tf), in declaration order."""
    for tf in sorted(module_dir.glob("*.tf")):
        if tf.name in ("variables.tf", "outputs.tf"):
            continue
        for kind, name in _DECLARATION.findall(tf.read_text()):
            home = "variables.tf" if kind == "variable" else "outputs.tf"
            raise ModuleDocsError(f"{tf}: {kind} {name!r} must be declared in {home} (the README generator reads only that file)")
    inputs = [
        Input(
            name=name,
            description=_text(body.get("description")),
            type=_type(body.get("type")),
            default=_default(body["default"]) if "default" in body else None,
        )
        for name, body in _blocks(_load(module_dir / "variables.tf"), "variable")
    ]
    outputs = [
        Output(name=name, description=_text(body.get("description")), sensitive=body.get("sensitive") is True)
        for name, body in _blocks(_load(module_dir / "outputs.tf"), "output")
    ]
    return inputs, outputs


# --- writing the tables --------------------------------------------------------------------------


def _cell(text: str) -> str:
    # A pipe ends a cell even inside backticks (GitHub-flavoured Markdown): escape it.
    return text.replace("|", "\\|")


def _prose(text: str) -> str:
    """A description in a cell. Outside its `code spans`, `<name>` would be read as an HTML tag and
    `a_*/b_*` as emphasis: both are escaped."""
    parts = re.split(r"(`[^`]+`)", text)
    for i in range(0, len(parts), 2):  # even indexes: outside code spans
        parts[i] = re.sub(r"<(?=[A-Za-z/])", r"\\<", parts[i]).replace("*", "\\*")
    return _cell("".join(parts))


def _code(text: str) -> str:
    fence = "``" if "`" in text else "`"
    pad = " " if "`" in text else ""
    return f"{fence}{pad}{_cell(text)}{pad}{fence}"


def render(inputs: list[Input], outputs: list[Output]) -> str:
    """The Markdown between the markers (without them)."""
    lines = ["## Inputs", ""]
    if inputs:
        lines += ["| Name | Description | Type | Default | Required |", "|------|-------------|------|---------|:--------:|"]
        for i in inputs:
            default = "n/a" if i.default is None else _code(i.default)
            lines.append(
                f"| {_code(i.name)} | {_prose(i.description)} | {_code(i.type)} | {default} | {'yes' if i.required else 'no'} |"
            )
    else:
        lines.append("No inputs.")
    lines += ["", "## Outputs", ""]
    if outputs:
        lines += ["| Name | Description |", "|------|-------------|"]
        for o in outputs:
            description = o.description + (" (sensitive)" if o.sensitive else "")
            lines.append(f"| {_code(o.name)} | {_prose(description.strip())} |")
    else:
        lines.append("No outputs.")
    return "\n".join(lines)


def _split(readme: Path) -> tuple[str, str, str]:
    """README text → (before BEGIN, between the markers, from END on)."""
    if not readme.exists():
        raise ModuleDocsError(f"{readme}: missing (write the module's README with {BEGIN} and {END} where its tables go)")
    text = readme.read_text()
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise ModuleDocsError(f"{readme}: needs exactly one {BEGIN} followed by one {END} (where the Inputs/Outputs tables go)")
    start = text.index(BEGIN) + len(BEGIN)
    end = text.index(END)
    return text[:start], text[start:end], text[end:]


def expected_readme(module_dir: Path) -> str:
    """The module's README with its tables regenerated (raises ModuleDocsError)."""
    before, _, after = _split(module_dir / "README.md")
    inputs, outputs = read_module(module_dir)
    return f"{before}\n{render(inputs, outputs)}\n{after}"


def modules(modules_dir: Path = MODULES_DIR) -> list[Path]:
    """Every module directory (one holding a .tf file)."""
    return sorted(p for p in modules_dir.iterdir() if p.is_dir() and any(p.glob("*.tf")))


def run(modules_dir: Path = MODULES_DIR, *, check: bool) -> tuple[list[str], list[str]]:
    """Check or regenerate every module's README → (problems, READMEs rewritten). One line per problem."""
    problems: list[str] = []
    written: list[str] = []
    for module_dir in modules(modules_dir):
        readme = module_dir / "README.md"
        shown = _shown(readme)
        try:
            expected = expected_readme(module_dir)
        except ModuleDocsError as exc:
            problems.append(str(exc).replace(str(readme), shown).replace(str(module_dir), _shown(module_dir)))
            continue
        if readme.read_text() == expected:
            continue
        if check:
            problems.append(f"{shown}: Inputs/Outputs tables are stale (run `{REGENERATE}`)")
        else:
            readme.write_text(expected)
            written.append(shown)
    return problems, written


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localdev tfdocs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a README is missing, unmarked or stale")
    parser.add_argument("--modules-dir", type=Path, default=MODULES_DIR, help="directory of the modules (default: terraform/modules)")
    args = parser.parse_args(argv)
    problems, written = run(args.modules_dir, check=args.check)
    for line in written:
        print(f"{line}: tables regenerated")
    for line in problems:
        print(line, file=sys.stderr)
    if not problems:
        count = len(modules(args.modules_dir))
        print(f"{count} module READMEs {'up to date' if args.check else 'in sync'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

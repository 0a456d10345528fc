"""The subset of Go's text/template that Lilypad module templates use, with Lilypad's input encoding.

Lilypad renders `lilypad_module.json.tmpl` with Go's text/template after JSON-encoding every input, so
`{{ .Message }}` becomes a JSON string literal (`-i Message=moo` renders `"moo"`) and an input can never break out
of the JSON it lands in. Supported actions, which cover Lilypad's published modules:

- `{{ .Key }}`: the JSON-encoded input (an error naming the input when it was not given);
- `{{ if .Key }} ... {{ else if .Other }} ... {{ else }} ... {{ end }}`: true when the input was given (so
  templates give defaults);
- `{{ subst "FORMAT" .Key ... }}`: Lilypad's `subst`, `%s` / `%v` replaced by the decoded inputs. Lilypad returns
  the text raw, which lets an input containing a quote rewrite the spec; here it is escaped for use inside a JSON
  string literal, which is the same text for every input without quotes, backslashes or control characters;
- `{{ image }}`: this project's extension, the module's own locally built image pinned by digest (a JSON string);
- `{{/* comments */}}` and the `{{-` / `-}}` whitespace trimming markers.

Anything else is a TemplateError naming the line and the action, raised at parse time, before any input is used.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)
TOKEN = re.compile(r'\s*(?:(\.[A-Za-z_][A-Za-z0-9_]*)|("(?:[^"\\]|\\.)*")|(`[^`]*`)|([A-Za-z_][A-Za-z0-9_]*))')
SUPPORTED = (
    '{{ .Input }}, {{ if .Input }}/{{ else }}/{{ else if .Input }}/{{ end }}, {{ subst "fmt" .Input }}, '
    "{{ image }}, {{/* comment */}}"
)


class TemplateError(ValueError):
    """The template cannot be parsed or rendered; the message names the line, the action or the input."""


@dataclass(frozen=True)
class Text:
    """Literal template text, or a string literal argument."""

    text: str


@dataclass(frozen=True)
class Input:
    """`.Key`: an input by name."""

    key: str


@dataclass(frozen=True)
class Ident:
    """A bare word: a keyword (if, else, end) or a function name."""

    name: str


@dataclass(frozen=True)
class Call:
    """Print an input (`name` None, one Input argument) or a function's result."""

    name: str | None
    args: tuple[Input | Text, ...]
    line: int


@dataclass
class If:
    branches: list[tuple[str | None, list[Node]]]  # (condition input, or None for else; body)
    line: int


Node = Text | Call | If


@dataclass(frozen=True)
class Template:
    """A parsed template and every input it refers to."""

    nodes: tuple[Node, ...]
    inputs: frozenset[str] = field(default_factory=frozenset)


def _line(source: str, pos: int) -> int:
    return source.count("\n", 0, pos) + 1


def _tokens(action: str, line: int) -> list[Input | Text | Ident]:
    out: list[Input | Text | Ident] = []
    pos, end = 0, len(action.rstrip())
    while pos < end:
        m = TOKEN.match(action, pos)
        if not m or m.end() == pos:
            raise TemplateError(f"line {line}: cannot parse {{{{ {action.strip()} }}}}; supported: {SUPPORTED}")
        key, dq, bq, word = m.groups()
        out.append(Input(key[1:]) if key else Text(json.loads(dq)) if dq else Text(bq[1:-1]) if bq else Ident(word))
        pos = m.end()
    return out


class _Parser:
    """Builds the node tree action by action; an open `if` is a stack entry (node, the body it sits in)."""

    def __init__(self) -> None:
        self.root: list[Node] = []
        self.body = self.root
        self.stack: list[tuple[If, list[Node]]] = []
        self.inputs: set[str] = set()

    def _open(self, line: int, what: str) -> If:
        if not self.stack or self.stack[-1][0].branches[-1][0] is None:
            raise TemplateError(f"line {line}: {{{{ {what} }}}} without an open {{{{ if }}}}")
        return self.stack[-1][0]

    def _branch(self, node: If, cond: str | None) -> None:
        node.branches.append((cond, []))
        self.body = node.branches[-1][1]

    def action(self, tokens: list[Input | Text | Ident], action: str, line: int) -> None:
        words = [t.name if isinstance(t, Ident) else None for t in tokens]
        last = tokens[-1] if tokens else None
        if words[:1] == ["if"] or words[:2] == ["else", "if"]:
            n = 2 if words[0] == "if" else 3
            if len(tokens) != n or not isinstance(last, Input):
                raise TemplateError(f"line {line}: {{{{ {action} }}}} must test one input, e.g. {{{{ if .Key }}}}")
            self.inputs.add(last.key)
            if words[0] == "if":
                node = If([], line)
                self.body.append(node)
                self.stack.append((node, self.body))
                self._branch(node, last.key)
            else:
                self._branch(self._open(line, "else if"), last.key)
        elif words == ["else"]:
            self._branch(self._open(line, "else"), None)
        elif words == ["end"]:
            if not self.stack:
                raise TemplateError(f"line {line}: {{{{ end }}}} without an open {{{{ if }}}}")
            self.body = self.stack.pop()[1]
        elif len(tokens) == 1 and isinstance(last, Input):
            self.inputs.add(last.key)
            self.body.append(Call(None, (last,), line))
        elif words[:1] == ["subst"] and len(tokens) >= 2 and isinstance(tokens[1], Text):
            args = tokens[1:]
            if any(isinstance(a, Ident) for a in args):
                raise TemplateError(f"line {line}: subst takes a format string, then inputs or string literals")
            self.inputs.update(a.key for a in args if isinstance(a, Input))
            self.body.append(Call("subst", tuple(args), line))  # type: ignore[arg-type]
        elif words == ["image"]:
            self.body.append(Call("image", (), line))
        else:
            raise TemplateError(f"line {line}: unsupported action {{{{ {action} }}}}; supported: {SUPPORTED}")


def parse(source: str) -> Template:
    """Parse `source`; raise TemplateError on anything outside the supported subset or an unbalanced if/end."""
    p = _Parser()
    pos, trim_next = 0, False
    for m in ACTION.finditer(source):
        text = source[pos : m.start()]
        text = text.lstrip() if trim_next else text
        text = text.rstrip() if m.group(1) else text
        if text:
            p.body.append(Text(text))
        pos, trim_next = m.end(), bool(m.group(3))
        line, action = _line(source, m.start()), m.group(2).strip()
        if not (action.startswith("/*") and action.endswith("*/")):
            p.action(_tokens(action, line), action, line)
    if p.stack:
        raise TemplateError(f"line {p.stack[-1][0].line}: {{{{ if }}}} is never closed with {{{{ end }}}}")
    tail = source[pos:].lstrip() if trim_next else source[pos:]
    if "{{" in tail:
        raise TemplateError(f"line {_line(source, source.index('{{', pos))}: {{{{ is never closed with }}}}")
    if tail:
        p.root.append(Text(tail))
    return Template(tuple(p.root), frozenset(p.inputs))


def go_format(fmt: str, values: list[str], line: int) -> str:
    """Go's fmt.Sprintf for the verbs templates use: %s and %v (strings), %% (a percent sign)."""
    it = iter(values)

    def verb(m: re.Match[str]) -> str:
        if m.group(0) == "%%":
            return "%"
        if m.group(0) in ("%s", "%v"):
            try:
                return next(it)
            except StopIteration:
                raise TemplateError(f"line {line}: subst format has more verbs than arguments") from None
        raise TemplateError(f"line {line}: subst verb {m.group(0)!r} unsupported; allowed %s, %v, %%")

    out = re.sub(r"%.", verb, fmt)
    if next(it, None) is not None:
        raise TemplateError(f"line {line}: subst has more arguments than format verbs")
    return out


def render(template: Template, inputs: Mapping[str, str], image: Callable[[], str] | None = None) -> str:
    """Render with raw (unencoded) `inputs`; `image` supplies the pinned image for `{{ image }}`."""
    out: list[str] = []

    def value(arg: Input | Text, line: int) -> str:
        if isinstance(arg, Text):
            return arg.text
        if arg.key not in inputs:
            raise TemplateError(f"input {arg.key!r} is required by the template (line {line}): pass -i {arg.key}=...")
        return inputs[arg.key]

    def walk(nodes: list[Node] | tuple[Node, ...]) -> None:
        for node in nodes:
            if isinstance(node, Text):
                out.append(node.text)
            elif isinstance(node, If):
                chosen = next((b for c, b in node.branches if c is None or c in inputs), [])
                walk(chosen)
            elif node.name is None:
                out.append(json.dumps(value(node.args[0], node.line)))
            elif node.name == "subst":
                text = go_format(
                    value(node.args[0], node.line), [value(a, node.line) for a in node.args[1:]], node.line
                )
                out.append(json.dumps(text)[1:-1])
            else:
                if image is None:
                    raise TemplateError(f"line {node.line}: {{{{ image }}}} needs the module's built image")
                out.append(json.dumps(image()))

    walk(template.nodes)
    return "".join(out)

"""The Go-template subset: Lilypad's JSON encoding of inputs, defaults, subst, trimming, and clear parse errors."""

from __future__ import annotations

import json
import re

import pytest

from live.modules.template import TemplateError, go_format, parse, render

ARGS = '{"args": ["say", {{ .Message }}]}'


@pytest.mark.parametrize("message", ["moo", 'a "quoted" word', "back\\slash", "two\nlines", "", "ünïcode", "}}"])
def test_inputs_are_json_encoded_so_any_value_stays_one_string(message: str) -> None:
    assert json.loads(render(parse(ARGS), {"Message": message})) == {"args": ["say", message]}


def test_an_input_cannot_inject_json() -> None:
    attack = '"], "Image": "evil@sha256:' + "0" * 64
    assert json.loads(render(parse(ARGS), {"Message": attack}))["args"][1] == attack


@pytest.mark.parametrize(
    ("inputs", "expected"), [({"A": "x"}, "x"), ({"B": "y"}, "y"), ({"A": "x", "B": "y"}, "x"), ({}, "default")]
)
def test_if_else_if_else_tests_whether_an_input_was_given(inputs: dict[str, str], expected: str) -> None:
    t = parse('[{{ if .A }}{{ .A }}{{ else if .B }}{{ .B }}{{ else }}"default"{{ end }}]')
    assert json.loads(render(t, inputs)) == [expected]
    assert t.inputs == {"A", "B"}


def test_nested_ifs() -> None:
    t = parse('[{{ if .A }}{{ if .B }}"ab"{{ else }}"a"{{ end }}{{ else }}"none"{{ end }}]')
    assert [json.loads(render(t, i))[0] for i in ({"A": "1", "B": "2"}, {"A": "1"}, {"B": "2"})] == ["ab", "a", "none"]


def test_subst_formats_decoded_inputs_escaped_for_a_json_string() -> None:
    t = parse('["{{ subst "PROMPT=%s, N=%v (100%%)" .Prompt .N }}"]')
    assert json.loads(render(t, {"Prompt": 'say "hi"', "N": "3"})) == ['PROMPT=say "hi", N=3 (100%)']


def test_trim_markers_and_comments() -> None:
    t = parse("[  {{- /* a comment */ -}}  \n  {{- .A -}}  ]")
    assert render(t, {"A": "x"}) == '["x"]'


def test_image_function_prints_the_pinned_image_as_a_json_string() -> None:
    pinned = "twin/x:v1@sha256:" + "a" * 64
    assert json.loads(render(parse('{"Image": {{ image }}}'), {}, lambda: pinned)) == {"Image": pinned}
    with pytest.raises(TemplateError, match="image"):
        render(parse("{{ image }}"), {})


def test_a_missing_input_names_itself() -> None:
    with pytest.raises(TemplateError, match=r"input 'Message' is required .*-i Message="):
        render(parse(ARGS), {})


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ range .X }}{{ end }}", "unsupported action {{ range .X }}"),
        ("{{ .A | printf }}", "cannot parse"),
        ("[{{ if .A }}1", "line 1: {{ if }} is never closed"),
        ("\n\n{{ end }}", "line 3: {{ end }} without an open {{ if }}"),
        ("{{ else }}", "{{ else }} without an open {{ if }}"),
        ("{{ if .A }}{{ else }}{{ else }}{{ end }}", "{{ else }} without an open {{ if }}"),
        ("{{ if .A .B }}{{ end }}", "must test one input"),
        ("{{ if }}{{ end }}", "must test one input"),
        ("[1, {{ .A ]", "{{ is never closed"),
        ("{{ subst .A }}", "unsupported action"),
        ('{{ subst "%s" image }}', "subst takes a format string"),
    ],
)
def test_parse_errors_name_the_line_and_action(source: str, message: str) -> None:
    with pytest.raises(TemplateError, match=re.escape(message)):
        parse(source)


@pytest.mark.parametrize(
    ("fmt", "values", "message"),
    [("%s %s", ["a"], "more verbs"), ("%s", ["a", "b"], "more arguments"), ("%d", ["1"], "unsupported")],
)
def test_subst_format_errors(fmt: str, values: list[str], message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        go_format(fmt, values, 1)


def test_json_braces_outside_actions_are_plain_text() -> None:
    assert json.loads(render(parse('{"a": {"b": {{ .X }}}}'), {"X": "1"})) == {"a": {"b": "1"}}

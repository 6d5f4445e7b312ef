"""Property tests of the structured values (issue 10): whatever a hostile recipe puts in a field
that reaches a Dockerfile or a shell, a control character, a shell metacharacter, a newline or a
pip option is refused with a KbuildError, and nothing is rendered; what the fields are meant to
hold is accepted."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import make_workspace
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kbuild.compile.render import build_args, render
from kbuild.compile.select import Selection, make_request
from kbuild.errors import KbuildError
from kbuild.model import validate
from kbuild.model.validate import SchemaTypeError
from kbuild.model.workspace import load_catalog

# Each structured field, as recipe text around one string literal (`@`), in an image "x".
FIELDS = {
    "package": 'image(name = "x", parent = "base", packages = {"deb": [@]})',
    "binary package": 'image(name = "x", parent = "base", binary = {"deb": [@]})',
    "env key": 'image(name = "x", parent = "base", env = {@: "v"})',
    "env value": 'image(name = "x", parent = "base", env = {"K": @})',
    "label key": 'image(name = "x", parent = "base", labels = {@: "v"})',
    "label value": 'image(name = "x", parent = "base", labels = {"k": @})',
    "description": 'image(name = "x", parent = "base", description = @)',
    "user name": 'image(name = "x", parent = "base", user = user(@, uid = 42))',
    "user home": 'image(name = "x", parent = "base", user = user("svc", uid = 42, home = @))',
    "user shell": 'image(name = "x", parent = "base", user = user("svc", uid = 42, shell = @))',
    "file destination": 'image(name = "x", parent = "base", files = {"f": @})',
    "block entry": 'image(name = "x", parent = "base", blocks = {"footer": [@]})',
    "requirement": 'image(name = "x", parent = "base", source = pip(@))',
    "constraint": 'image(name = "x", parent = "base", source = pip("k", constraints = [@]))',
    "venv": 'image(name = "x", parent = "base", source = pip("k", venv = @))',
    "override package": 'override("base", packages_append = {"deb": [@]})',
    "override block": 'override("base", blocks = {"footer": [@]})',
}
# What a valid value of each field looks like, to be broken by one hostile character.
VALID = {
    "package": "curl",
    "binary package": "curl",
    "env key": "LANG",
    "env value": "C.UTF-8",
    "label key": "org.example.k",
    "label value": "v1",
    "description": "an image",
    "user name": "svc",
    "user home": "/var/lib/svc",
    "user shell": "/bin/sh",
    "file destination": "/etc/f",
    "block entry": "RUN true",
    "requirement": "keystone==27.0.0",
    "constraint": "keystone==27.0.0",
    "venv": "/opt/venv",
    "override package": "curl",
    "override block": "RUN true",
}
# Free text may hold any printable character; a structured value not even these.
FREE_TEXT = {"env value", "label value", "description", "block entry", "override block"}

CONTROL = st.one_of(
    st.characters(min_codepoint=0, max_codepoint=0x1F),
    st.sampled_from(["\x7f", "\x85", "\x9b", "\u2028", "\u2029"]),
)
SHELL = st.sampled_from([";", "$(id)", "`id`", "&&", "|", ">", "<", "'", '"', "\\", " ", "*", "\t", "#"])


def literal(value: str) -> str:
    """A recipe string literal for `value`, every character escaped as the language reads it."""
    return json.dumps(value)


def evaluate_and_render(tmp_path: Path, field: str, value: str) -> str:
    """The Dockerfile of `x` made from the field holding `value` (raises KbuildError if refused)."""
    text = FIELDS[field].replace("@", literal(value)) + "\n"
    files = {"recipes/x/x.kb": text, "recipes/x/f": "f\n"}
    if text.startswith("override"):
        files["recipes/x/x.kb"] = 'image(name = "x", parent = "base")\n' + text
    root = make_workspace(tmp_path, files)
    catalog = load_catalog(root)
    request = make_request(catalog)
    rendered = render(
        catalog, Selection(("x", "base"), ("x", "base"), {}), request, build_args(catalog.settings)
    )
    return "\n".join(t.dockerfile for t in rendered.targets)


@pytest.mark.parametrize("field", FIELDS)
def test_the_valid_value_of_each_field_renders(field: str, tmp_path: Path) -> None:
    assert evaluate_and_render(tmp_path, field, VALID[field])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    field=st.sampled_from(sorted(FIELDS)),
    bad=CONTROL,
    position=st.integers(0, 20),
)
@example(field="override block", bad="\n", position=100)
@example(field="package", bad="\n", position=4)
def test_a_control_character_in_any_field_never_renders(
    field: str, bad: str, position: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    valid = VALID[field]
    value = valid[:position] + bad + valid[position:]
    with pytest.raises(KbuildError, match="control character"):
        evaluate_and_render(tmp_path_factory.mktemp("ws"), field, value)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    field=st.sampled_from(sorted(set(FIELDS) - FREE_TEXT)),
    bad=SHELL,
    position=st.integers(0, 20),
)
def test_a_shell_metacharacter_in_a_structured_field_never_renders(
    field: str, bad: str, position: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    valid = VALID[field]
    value = valid[:position] + bad + valid[position:]
    if field in ("requirement", "constraint") and bad in ("<", ">", " ", "*"):
        return  # version operators and wildcards, and the spaces PEP 508 allows: "keystone >=27.*"
    if field == "label key" and bad not in ("\t",):
        return  # label keys are quoted the Dockerfile way: only control characters are refused
    with pytest.raises(KbuildError):
        evaluate_and_render(tmp_path_factory.mktemp("ws"), field, value)


# --- the validators themselves -------------------------------------------------------------------

printable = st.text(st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp")), max_size=20)


@given(value=printable, bad=CONTROL)
def test_no_control_refuses_exactly_the_control_characters(value: str, bad: str) -> None:
    validate.no_control(value)
    with pytest.raises(SchemaTypeError) as error:
        validate.no_control(value + bad + value)
    assert error.value.value == value + bad + value  # the literal to point at


@given(name=st.from_regex(r"[a-z0-9][a-z0-9+.-]{0,20}", fullmatch=True))
def test_debian_package_names_are_accepted(name: str) -> None:
    assert validate.check_package("deb", name) == name


@given(
    value=st.text(max_size=30).filter(lambda v: not re.fullmatch(r"[a-z0-9][a-z0-9+.-]*(:[a-z0-9-]+)?", v))
)
def test_anything_else_is_not_a_debian_package(value: str) -> None:
    with pytest.raises(SchemaTypeError):
        validate.check_package("deb", value)


@given(value=st.text(max_size=40))
def test_a_block_entry_is_one_instruction_never_from(value: str) -> None:
    try:
        validate.check_instruction(value)
    except SchemaTypeError:
        return
    assert "\n" not in value and "\r" not in value and not value.rstrip().endswith("\\")
    first = value.split(" ", 1)[0].upper()
    assert first in validate.INSTRUCTIONS or not value.strip() or value.lstrip().startswith("#")
    assert first not in ("FROM", "ONBUILD")


@given(value=st.text(max_size=40))
def test_an_accepted_requirement_is_never_a_pip_option(value: str) -> None:
    try:
        validate.check_requirement(value)
    except SchemaTypeError:
        return
    assert not value.startswith("-") and " -" not in value
    assert validate.control_character(value) is None


@given(value=st.text(max_size=40))
def test_an_accepted_path_is_absolute_and_inert(value: str) -> None:
    try:
        validate.check_absolute_path(value)
    except SchemaTypeError:
        return
    assert value.startswith("/")
    assert not set(value) & set(" \t\n\r;$`'\"\\|&<>(){}*?!#")

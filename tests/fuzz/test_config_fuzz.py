"""Garbage in, a clear error out: the config loader never crashes and never half-loads."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.config.loader import ConfigError, parse
from router.config.schema import Config
from router.routing.rules import build_adapters

EXAMPLE = (Path(__file__).resolve().parents[2] / "config" / "routing.yaml").read_text()
LINES = EXAMPLE.splitlines()
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _load(text: str) -> Config | ConfigError:
    try:
        cfg = parse(text, "fuzz.yaml", env={})
        build_adapters(cfg, file="fuzz.yaml")
    except ConfigError as err:
        return err
    return cfg


def _assert_clear(result: Config | ConfigError, text: str) -> None:
    if isinstance(result, Config):
        assert result.routes, "a loaded config has routes"
        assert any(r.name == "default" or r.match is None for r in result.routes)
        return
    assert result.issues, "a refusal says why"
    n_lines = max(1, len(text.splitlines()))
    for issue in result.issues:
        assert issue.file == "fuzz.yaml"
        assert issue.reason.strip()
        assert 0 <= issue.line <= n_lines + 1, str(issue)


@FUZZ
@given(st.text(max_size=400))
def test_arbitrary_text(text: str) -> None:
    _assert_clear(_load(text), text)


@FUZZ
@given(st.data())
def test_example_with_a_line_removed_duplicated_or_garbled(data: st.DataObject) -> None:
    lines = list(LINES)
    index = data.draw(st.integers(0, len(lines) - 1))
    action = data.draw(st.sampled_from(["drop", "dup", "garble", "retype"]))
    if action == "drop":
        del lines[index]
    elif action == "dup":
        lines.insert(index, lines[index])
    elif action == "garble":
        junk = data.draw(st.text(alphabet=":{}[]-#&*!|>'\"%@` \tabc0", min_size=1, max_size=6))
        pos = data.draw(st.integers(0, len(lines[index])))
        lines[index] = lines[index][:pos] + junk + lines[index][pos:]
    else:
        value = data.draw(st.sampled_from(["-1", "1e999", "null", "[]", "{}", "'x'", "yes", "0.0"]))
        head, sep, _ = lines[index].partition(": ")
        lines[index] = f"{head}{sep or ': '}{value}"
    text = "\n".join(lines)
    _assert_clear(_load(text), text)


def test_unchanged_example_loads() -> None:
    assert isinstance(_load(EXAMPLE), Config)


def test_recursive_alias_is_refused_not_a_crash() -> None:
    text = EXAMPLE + "\nloop: &a [*a]\n"
    result = _load(text)
    assert isinstance(result, ConfigError)
    _assert_clear(result, text)


def test_unknown_tag_names_its_line() -> None:
    text = EXAMPLE.replace("approval_rate: 0.93", "approval_rate: !python/object 0.93")
    result = _load(text)
    assert isinstance(result, ConfigError)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "!python/object" in t)
    assert [i.line for i in result.issues] == [line]
    assert "processors.sim_a.approval_rate" in str(result)

"""The offline reader of stack files gives the program what the Pulumi CLI gives it."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from stacks import stack_file, stack_yaml
from tests.stack_yaml_table import REFUSED, SCALARS, STRUCTURED
from tools import render as render_tool


@pytest.mark.parametrize(("text", "expected"), SCALARS)
def test_scalar_reaches_the_program_as_the_cli_passes_it(text: str, expected: str) -> None:
    assert stack_yaml.config_string(stack_yaml.load(f"k: {text}\n")["k"]) == expected


@pytest.mark.parametrize(("text", "expected"), STRUCTURED)
def test_structured_value_reaches_the_program_as_json(text: str, expected: object) -> None:
    assert json.loads(stack_yaml.config_string(stack_yaml.load(f"k: {text}\n")["k"])) == expected


@pytest.mark.parametrize(("body", "word"), REFUSED)
def test_what_the_cli_refuses_is_refused(body: str, word: str) -> None:
    with pytest.raises(stack_yaml.StackFileError):
        stack_yaml.load("config:\n" + body)


@pytest.mark.parametrize("text", [
    "k: !!int 5\n",                  # explicit tags other than !!str and !!binary
    "k: !!binary '***'\n",
    "k: [\n",                        # a syntax error
    "k: &a [1]\nk2: &b [*a, *a]\n" + "".join(
        f"k{i}: &x{i} [{', '.join(['*' + ('b' if i == 3 else f'x{i - 1}')] * 10)}]\n" for i in range(3, 8)),
])
def test_refusals_of_the_offline_reader(text: str) -> None:
    with pytest.raises(stack_yaml.StackFileError):
        stack_yaml.load(text)


def test_yaml_1_1_readings_no_longer_reach_the_settings(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: aiwfe-platform\nruntime: python\n")
    (tmp_path / "Pulumi.t.yaml").write_text(textwrap.dedent("""\
        config:
          aiwfe-platform:redis:
            masters: 010
          aiwfe-platform:mesh:
            cni: yes
          aiwfe-platform:sessions:
            sessionTtl: 1:00:00
        """))
    values = render_tool.load_stack_config("t", root=tmp_path).values
    assert json.loads(values["aiwfe-platform:redis"]) == {"masters": 8}
    assert json.loads(values["aiwfe-platform:mesh"]) == {"cni": "yes"}
    assert json.loads(values["aiwfe-platform:sessions"]) == {"sessionTtl": "1:00:00"}


def test_a_duplicated_key_stops_the_render_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: aiwfe-platform\nruntime: python\n")
    source = (render_tool.ROOT / "Pulumi.staging.yaml").read_text()
    (tmp_path / "Pulumi.dup.yaml").write_text(source + "  aiwfe-platform:redis:\n    masters: 3\n")
    monkeypatch.setattr(stack_file, "ROOT", tmp_path)
    assert render_tool.main(["--stack", "dup", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Pulumi.dup.yaml" in err[0] and "already defined" in err[0]


STAGING = (render_tool.ROOT / "Pulumi.staging.yaml").read_text()
BOMB = "  aiwfe-platform:bomb:\n    a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
    f"    a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 6))
NAMESPACE = "  aiwfe-platform:appNamespace: aiwfe\n"


@pytest.mark.parametrize(("text", "word"), [
    (STAGING + "  aiwfe-platform:extra: [\n", "not valid YAML"),
    ("- config\n", "must be maps"),
    ("config:\n  - aiwfe-platform:appNamespace\n", "must be maps"),
    (STAGING + "  5: x\n", "config aiwfe-platform:5 = 'x': unknown key"),
    (STAGING.replace(NAMESPACE, "  aiwfe-platform:appNamespace: 2024-01-01\n"),
     "config aiwfe-platform:appNamespace = '2024-01-01 00:00:00 +0000 UTC'"),
    (STAGING.replace(NAMESPACE, "  aiwfe-platform:appNamespace: !!binary QmFkX05T\n"),
     "config aiwfe-platform:appNamespace = 'Bad_NS'"),
    (STAGING + BOMB, "alias bomb"),
], ids=["syntax", "file-list", "config-list", "integer-key", "date", "binary", "alias-bomb"])
def test_yaml_level_problems_exit_2_in_one_line(text: str, word: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    assert NAMESPACE in STAGING
    (tmp_path / "Pulumi.yaml").write_text("name: aiwfe-platform\nruntime: python\n")
    (tmp_path / "Pulumi.staging.yaml").write_text(text)
    monkeypatch.setattr(stack_file, "ROOT", tmp_path)
    assert render_tool.main(["--stack", "staging", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and word in err[0], err

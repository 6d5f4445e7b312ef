"""Images a distro cannot build are data: listed, left out of the bake and reported, not failed."""

from __future__ import annotations

import json
from pathlib import Path

from compiling import compile_workspace
from conftest import MakeWorkspace, run_kbuild

from kbuild.engine.buildx import TargetOutcome
from kbuild.engine.results import summary

RECIPE = """\
image(name = "fluentd", parent = "base", unbuildable = {"debian": "fluentd is not packaged in Debian"})
image(name = "fluentd-plugins", parent = "fluentd")
profile(name = "logging", images = ["^fluentd", "^keystone$"])
"""


def test_unbuildable_images_are_listed_with_why(workspace_factory: MakeWorkspace) -> None:
    workspace = workspace_factory({"recipes/fluentd/fluentd.kb": RECIPE})
    result = run_kbuild("list", "-p", "logging", "--json", "-C", workspace)
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["fluentd"]["unbuildable"] == "fluentd is not packaged in Debian"
    assert rows["fluentd-plugins"]["unbuildable"] == (
        "its ancestor 'fluentd' cannot be built on debian: fluentd is not packaged in Debian"
    )
    assert rows["keystone"]["unbuildable"] is None
    text = run_kbuild("list", "-p", "logging", "-C", workspace).stdout
    assert "unbuildable on debian: fluentd is not packaged in Debian" in text


def test_unbuildable_images_are_not_baked_and_the_summary_says_so(
    workspace_factory: MakeWorkspace, tmp_path: Path
) -> None:
    workspace = workspace_factory({"recipes/fluentd/fluentd.kb": RECIPE})
    compiled = compile_workspace(workspace, tmp_path / "build", profiles=("logging",))
    assert "fluentd" not in compiled.bake.targets and "fluentd-plugins" not in compiled.bake.targets
    assert "keystone" in compiled.bake.targets
    outcomes = {name: TargetOutcome(name, "built") for name in compiled.selection.images}
    report = summary(compiled, outcomes, {}, tmp_path / "logs")
    assert [entry["name"] for entry in report["unbuildable"]] == ["fluentd", "fluentd-plugins"]
    assert report["failed"] == [] and report["parent_error"] == []


def test_an_unbuildable_entry_names_a_known_distro(workspace_factory: MakeWorkspace) -> None:
    workspace = workspace_factory(
        {"recipes/x/x.kb": 'image(name = "x", parent = "base", unbuildable = {"debain": "no"})\n'}
    )
    result = run_kbuild("list", "-C", workspace)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "unknown distro 'debain'" in result.stderr
    assert "recipes/x/x.kb:1:51" in result.stderr
    assert "did you mean 'debian'?" in result.stderr


def test_an_image_clean_up_runs_in_its_install_layer(workspace_factory: MakeWorkspace) -> None:
    workspace = workspace_factory(
        {
            "recipes/x/x.kb": 'image(name = "x", parent = "base", packages = {"deb": ["mariadb-server"]}, '
            'clean = ["rm -rf /var/lib/mysql/*"])\n'
        }
    )
    result = run_kbuild("render", "x", "-C", workspace)
    assert result.returncode == 0, result.stderr
    install = next(block for block in result.stdout.split("\nRUN ") if "apt-get install" in block)
    assert install.split("\n\n")[0].endswith("&& rm -rf /var/lib/mysql/*")

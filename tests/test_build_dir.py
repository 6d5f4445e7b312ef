"""What is built is what is shown and hashed: the bake file, the Dockerfiles and the build
directory, against hostile names and values and against a second writer or a kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import MakeWorkspace, run_kbuild

from kbuild.compile.bake import escape
from kbuild.compile.render import dockerfile_quote
from kbuild.engine.files import exclusive, write_build_dir
from kbuild.engine.host import compile_workspace
from kbuild.errors import KbuildError


def compile_into(workspace: Path, build: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_kbuild("compile", "-C", workspace, "--build-dir", build, "-o", build / "bake.json", *args)


def bake_targets(build: Path) -> dict[str, dict]:
    return json.loads((build / "bake.json").read_text())["target"]


def assert_bake_file_is_whole(build: Path) -> None:
    """Every Dockerfile and context the bake file names is there, and holds what was rendered."""
    for name, target in bake_targets(build).items():
        assert Path(target["dockerfile"]).is_file(), name
        assert Path(target["context"]).is_dir(), name


def test_images_that_would_share_a_bake_target_are_refused(workspace_factory: MakeWorkspace) -> None:
    workspace = workspace_factory(
        {"recipes/x/x.kb": 'image(name = "a.b", parent = "base")\nimage(name = "a_b", parent = "base")\n'}
    )
    result = compile_into(workspace, workspace / "build")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "images 'a.b' and 'a_b' would be the same bake target 'a_b'" in result.stderr
    assert "recipes/x/x.kb:2:1" in result.stderr and "recipes/x/x.kb:1:1" in result.stderr


def test_a_context_file_named_dockerfile_does_not_replace_the_rendered_one(
    workspace_factory: MakeWorkspace,
) -> None:
    workspace = workspace_factory(
        {
            "recipes/x/x.kb": 'image(name = "x", parent = "base", files = {"Dockerfile": "/etc/x"})\n',
            "recipes/x/Dockerfile": "FROM evil.example/root:latest\n",
        }
    )
    build = workspace / "build"
    result = compile_into(workspace, build)
    assert result.returncode == 0, result.stderr
    target = bake_targets(build)["x"]
    dockerfile = Path(target["dockerfile"]).read_text()
    assert "evil.example" not in dockerfile and "FROM base" in dockerfile
    assert (Path(target["context"]) / "Dockerfile").read_text() == "FROM evil.example/root:latest\n"
    assert Path(target["dockerfile"]).parent != Path(target["context"])


def test_bake_templates_are_escaped_in_keys_and_values() -> None:
    escaped = escape({"${K}": ["${X}", {"%{if x}": "x${Y}%{endif}"}]})
    assert escaped == {"$${K}": ["$${X}", {"%%{if x}": "x$${Y}%%{endif}"}]}


@pytest.mark.docker
def test_buildx_reads_hostile_label_and_argument_keys_literally(
    workspace_factory: MakeWorkspace, tmp_path: Path
) -> None:
    """buildx itself, not our reading of it, says what the bake file means."""
    workspace = workspace_factory(
        {
            "BUILD/settings.kb": 'settings(distro = "debian", platforms = ["linux/amd64"], '
            'labels = {"${HOME}": "%{ if true }x%{ endif }"}, build_args = {"A${USER}": "$${B}"})\n'
        }
    )
    build = tmp_path / "build"
    assert compile_into(workspace, build).returncode == 0
    printed = subprocess.run(
        ["docker", "buildx", "bake", "-f", build / "bake.json", "--print", "base"],
        capture_output=True,
        text=True,
        check=True,
    )
    target = json.loads(printed.stdout)["target"]["base"]
    assert target["labels"]["${HOME}"] == "%{ if true }x%{ endif }"
    assert target["args"]["A${USER}"] == "$${B}"


def test_env_and_label_values_are_quoted_the_dockerfile_way(workspace_factory: MakeWorkspace) -> None:
    workspace = workspace_factory(
        {
            "recipes/x/x.kb": 'image(name = "x", parent = "base", env = {"A": "say \\"hi\\" to $HOME \\\\o/"}, '
            'labels = {"l": "$(id)"})\n'
        }
    )
    result = run_kbuild("render", "x", "-C", workspace)
    assert result.returncode == 0, result.stderr
    assert 'ENV A="say \\"hi\\" to \\$HOME \\\\o/"' in result.stdout
    assert 'LABEL "l"="\\$(id)"' in result.stdout


@pytest.mark.parametrize("value", ["a\nFROM x", "a\rb", "a\x00b", "\x1b[31mred"])
def test_a_control_character_never_reaches_a_dockerfile(value: str) -> None:
    with pytest.raises(KbuildError, match="control character"):
        dockerfile_quote(value)


def test_a_second_writer_of_a_build_directory_is_refused_cleanly(
    workspace_factory: MakeWorkspace, tmp_path: Path
) -> None:
    workspace = workspace_factory()
    build = tmp_path / "build"
    with exclusive(build):
        result = compile_into(workspace, build)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{build} is in use by another kbuild (pid {os.getpid()})" in result.stderr
    assert "--build-dir" in result.stderr
    assert compile_into(workspace, build).returncode == 0  # released


def test_concurrent_compiles_never_mix_generations(workspace_factory: MakeWorkspace, tmp_path: Path) -> None:
    """Compiles of two different workspaces into one build directory at the same time: each is
    done or refused with a clear message, and the bake file always names a whole generation."""
    first = workspace_factory()
    second = workspace_factory({"recipes/base/motd": "hello\n", "recipes/x/x.kb": 'image(name = "x")\n'})
    build = tmp_path / "build"
    command = [
        sys.executable,
        "-m",
        "kbuild",
        "compile",
        "--build-dir",
        str(build),
        "-o",
        str(build / "bake.json"),
    ]
    for _ in range(4):
        runs = [
            subprocess.Popen([*command, "-C", str(ws)], stderr=subprocess.PIPE, text=True)
            for ws in (first, second)
        ]
        for run in runs:
            _, stderr = run.communicate(timeout=60)
            assert "Traceback" not in stderr, stderr
            assert run.returncode == 0 or (run.returncode == 2 and "is in use by another kbuild" in stderr)
        assert_bake_file_is_whole(build)


def test_a_killed_compile_leaves_the_previous_bake_file_whole(
    workspace_factory: MakeWorkspace, tmp_path: Path
) -> None:
    build = tmp_path / "build"
    workspace = workspace_factory()
    assert compile_into(workspace, build).returncode == 0
    command = [sys.executable, "-m", "kbuild", "compile", "-C", str(workspace), "--build-dir", str(build)]
    for attempt in range(8):
        # A new generation each time: the build argument changes every content hash.
        settings = (
            f'settings(distro = "debian", platforms = ["linux/amd64"], build_args = {{"N": "{attempt}"}})\n'
        )
        (workspace / "BUILD/settings.kb").write_text(settings)
        run = subprocess.Popen([*command, "-o", str(build / "bake.json")], stderr=subprocess.DEVNULL)
        time.sleep(0.15 + 0.03 * attempt)
        run.send_signal(signal.SIGKILL)
        run.wait()
        assert_bake_file_is_whole(build)


@pytest.mark.parametrize("swap", ["file", "directory"])
def test_a_context_file_swapped_for_a_symlink_after_compile_is_not_copied(
    workspace_factory: MakeWorkspace, tmp_path: Path, swap: str
) -> None:
    """Between reading the recipes and writing the build directory, a hostile process replaces a
    context file (or its directory) with a symlink out of the workspace: nothing of it is copied."""
    workspace = workspace_factory()
    build = workspace / "build"
    compiled = compile_workspace(workspace, build)
    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "start.sh").write_text("a secret\n")
    recipe_dir = workspace / "recipes" / "keystone"
    if swap == "file":
        (recipe_dir / "start.sh").unlink()
        (recipe_dir / "start.sh").symlink_to(secret / "start.sh")
    else:
        recipe_dir.rename(workspace / "recipes" / "moved")
        recipe_dir.symlink_to(secret)
    with pytest.raises(KbuildError, match="changed since the recipes were read"):
        write_build_dir(compiled, build, build / "docker-bake.json")
    copied = [p for p in build.rglob("start.sh") if p.is_file()]
    assert all("a secret" not in p.read_text() for p in copied)
    assert not (build / "docker-bake.json").exists()


def test_context_files_are_copied_with_their_mode(workspace_factory: MakeWorkspace) -> None:
    workspace = workspace_factory()
    (workspace / "recipes" / "keystone" / "start.sh").chmod(0o750)
    build = workspace / "build"
    compiled = compile_workspace(workspace, build)
    write_build_dir(compiled, build, build / "docker-bake.json")
    [copied] = [p for p in build.rglob("start.sh") if p.is_file()]
    assert copied.read_text() == "#!/bin/sh\nexec keystone\n"
    assert copied.stat().st_mode & 0o777 == 0o750

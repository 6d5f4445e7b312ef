"""Bad input: every broken workspace makes the CLI exit 2 with a located error, never a traceback.

A case names a directory of tests/broken/ whose files are copied over the minimal valid workspace of
conftest.py (no directory: the minimal workspace as it is, for command-line mistakes), the command
line, and what stderr must show: `path:line:column`, the source line with a caret under that
column, a fragment of the message and the whole hint. Adding a case is one directory and one entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import MakeWorkspace, make_workspace, run_kbuild

CORPUS = Path(__file__).with_name("broken")


@dataclass(frozen=True)
class Case:
    name: str  # directory of tests/broken/ laid out like a workspace; missing: no files added
    where: str | None  # "path:line:column" of the error; None: no place (command-line mistakes)
    message: str  # a fragment of the first "error:" line
    hint: str | None = None  # the whole hint text; None: not checked
    args: tuple[str, ...] = ("list",)  # the command; `-C workspace` is added, `{workspace}` filled in
    notes: tuple[str, ...] = ()  # further "path:line:column" the error must show (with excerpt)


BAD = "recipes/bad/bad.kb"
INDENT = "check the indentation"
COMMA = "is a ',' missing before it?"
FROZEN = "values are frozen once the file that made them is evaluated; copy it first: list(x) or dict(x)"
RECURSION = "recipes must terminate; unroll the recursion"
OVERLAY = "vendor/overlay.kb"
WITH_OVERLAY = ("list", "--overlay", "{workspace}/vendor")

CASES = [
    # --- syntax ------------------------------------------------------------------------------
    Case("syntax_unclosed_bracket", f"{BAD}:1:6", "'(' is never closed", "is a bracket left open?"),
    Case("syntax_unclosed_list", f"{BAD}:1:12", "'[' is never closed", "is a bracket left open?"),
    Case("syntax_unexpected_indent", f"{BAD}:3:7", "unexpected indentation", INDENT),
    Case(
        "syntax_bad_dedent",
        f"{BAD}:3:5",
        "unindent does not match any outer indentation level",
        INDENT,
    ),
    Case("syntax_stray_character", f"{BAD}:3:20", "unexpected character '$'"),
    Case(
        "syntax_unterminated_string",
        f"{BAD}:2:12",
        "unexpected character '\"'",
        "strings must close on the same line (use triple quotes for long text)",
    ),
    Case("syntax_missing_comma_between_args", f"{BAD}:3:5", "unexpected 'parent'", COMMA),
    Case("syntax_missing_comma_in_list", f"{BAD}:1:48", "unexpected '\"less\"'", COMMA),
    Case("syntax_missing_colon", f"{BAD}:1:20", "unexpected end of line; expected ':'"),
    Case(
        "not_utf8",
        f"{BAD}:3:23",
        "recipes/bad/bad.kb is not UTF-8: byte 0xe9",
        "save the file as UTF-8",
    ),
    # --- names, arguments and types ----------------------------------------------------------
    Case("undefined_name", f"{BAD}:3:40", "undefined name 'PACKGES'", "did you mean 'PACKAGES'?"),
    Case("undefined_builtin", f"{BAD}:1:1", "undefined name 'imgae'", "did you mean 'image'?"),
    Case(
        "type_packages_not_a_dict",
        f"{BAD}:3:5",
        "image(): argument 'packages': expected a dict of strings to a list of strings, got list",
        "packages: family -> packages, for every install type",
    ),
    Case(
        "type_uid_string",
        f"{BAD}:1:23",
        "user(): argument 'uid': expected an int, got string",
        "uid: fixed user id",
        args=("compile",),
    ),
    Case("type_bad_image_name", f"{BAD}:1:7", "'Bad_Image' is not a valid image name"),
    Case(
        "unknown_argument_image",
        f"{BAD}:3:5",
        "image() got an unknown argument 'pakages'",
        "did you mean 'packages'?",
    ),
    Case(
        "unknown_argument_macro",
        f"{BAD}:3:24",
        "service() got an unknown argument 'pakages'",
        "did you mean 'packages'?",
    ),
    # --- load() ------------------------------------------------------------------------------
    Case(
        "load_missing_file",
        f"{BAD}:1:6",
        "cannot load '//recipes/lib/macro.kb': no such file recipes/lib/macro.kb",
        "did you mean '//recipes/lib/macros.kb'?",
    ),
    Case(
        "load_dotdot",
        f"{BAD}:1:6",
        "bad load path '../lib/macros.kb'",
        "use '//dir/file.kb' from the workspace root or 'file.kb' next to this file",
    ),
    Case(
        "load_control_character",
        f"{BAD}:1:6",
        "bad load path '//recipes/lib/\\x1b[2Jmacros.kb': it holds the control character '\\x1b'",
        "a load path is printable text: '//dir/file.kb' or 'file.kb'",
    ),
    Case(
        "load_missing_symbol",
        f"{BAD}:1:52",
        "recipes/lib/macros.kb has no symbol 'servce'",
        "did you mean 'service'?",
    ),
    Case(
        "load_private_symbol",
        f"{BAD}:1:33",
        "'_SECRET' is private to recipes/lib/macros.kb",
        "names starting with '_' stay in their file; rename it there to share it",
    ),
    Case(
        "load_cycle",
        "recipes/bad/c.kb:2:6",
        "load cycle: recipes/bad/a.kb -> recipes/bad/b.kb -> recipes/bad/c.kb -> recipes/bad/a.kb",
        "move the shared code to a file both can load",
    ),
    # --- evaluation --------------------------------------------------------------------------
    Case(
        "recursion_direct",
        f"{BAD}:2:30",
        "recursion is not allowed: layers -> layers",
        RECURSION,
        notes=(f"{BAD}:4:5",),
    ),
    Case(
        "recursion_mutual",
        f"{BAD}:5:33",
        "recursion is not allowed: even -> odd -> even",
        RECURSION,
        notes=(f"{BAD}:2:32", f"{BAD}:7:5"),
    ),
    # an error inside a macro shows the calls that led there, innermost first
    Case(
        "macro_call_chain",
        "recipes/bad/lib.kb:2:23",
        "user(): argument 'uid': expected an int, got string",
        "uid: fixed user id",
        notes=("recipes/bad/lib.kb:5:41", f"{BAD}:3:1"),
    ),
    Case(
        "macro_fail",
        f"{BAD}:3:9",
        "image names are lower case: Keystone",
        notes=(f"{BAD}:7:11", f"{BAD}:9:1"),
    ),
    Case("frozen_list_append", f"{BAD}:3:1", "cannot modify a frozen list", FROZEN),
    Case("frozen_dict_assign", f"{BAD}:3:1", "cannot modify a frozen dict", FROZEN),
    Case("break_outside_loop", f"{BAD}:3:1", "'break' outside a loop"),
    Case(
        "bad_string_escape",
        f"{BAD}:1:36",
        "bad escape in string: truncated \\xXX escape",
        "write a backslash as \\\\",
    ),
    Case("unhashable_dict_key", f"{BAD}:3:9", "a list cannot be a dict key"),
    Case(
        "too_deeply_nested",
        f"{BAD}:2:1",
        "too deeply nested to evaluate",
        "split it into smaller expressions or statements",
    ),
    Case("form_feed_line_numbers", f"{BAD}:3:5", "undefined name 'undefined_thing'"),
    Case("value_too_deep", None, "recipes/bad/bad.kb: a global value is too deeply nested to freeze"),
    # --- the catalog as a whole --------------------------------------------------------------
    Case(
        "parent_cycle",
        f"{BAD}:1:1",
        "parent cycle: cycle-a -> cycle-c -> cycle-b -> cycle-a",
        "an image cannot be its own ancestor",
        args=("compile",),
        notes=(f"{BAD}:4:1", f"{BAD}:2:1"),
    ),
    Case(
        "duplicate_image",
        "recipes/zz/dup.kb:2:1",
        "image 'keystone' is declared twice",
        "rename one of them, or use override() in an overlay to change an existing one",
        notes=("recipes/keystone/keystone.kb:8:1",),
    ),
    Case(
        "unknown_parent",
        "recipes/keystone/api.kb:1:39",
        "image 'keystone-api' has unknown parent 'keystone-bse'",
        "did you mean 'keystone-base'?",
    ),
    Case("unknown_family", f"{BAD}:3:17", "unknown package family 'dep'", "did you mean 'deb'?"),
    Case(
        "unknown_family_in_distro",
        "distros/fedora.kb:3:14",
        "unknown package family 'rpm'",
        "declared families: deb",
    ),
    Case(
        "missing_context_file",
        "recipes/keystone/api.kb:4:14",
        "image 'keystone-api': context file 'recipes/keystone/strat.sh' does not exist",
        "did you mean 'start.sh'?",
    ),
    Case(
        "unknown_block",
        f"{BAD}:3:15",
        "image 'bad' fills unknown block 'fotter'",
        "did you mean 'footer'?",
        args=("compile",),
    ),
    Case(
        "profile_matches_nothing",
        "BUILD/profiles.kb:3:1",
        "profile 'api': '^keystone-bse$' matches no image",
        "did you mean 'keystone-base'?",
    ),
    Case(
        "settings_unknown_distro",
        "BUILD/settings.kb:1:1",
        "settings(): unknown distro 'debain'",
        "did you mean 'debian'?",
    ),
    # --- overlays and override(): each error points at the value it is about ---------------
    Case(
        "override_unknown_image",
        f"{OVERLAY}:2:10",
        "override(): unknown image 'keystne'",
        "did you mean 'keystone'?",
        WITH_OVERLAY,
    ),
    Case(
        "override_unknown_block",
        f"{OVERLAY}:3:15",
        "image 'keystone' fills unknown block 'fotter'",
        "did you mean 'footer'?",
        WITH_OVERLAY,
    ),
    Case(
        "override_unknown_family",
        f"{OVERLAY}:1:41",
        "unknown package family 'dbe'",
        "did you mean 'deb'?",
        WITH_OVERLAY,
    ),
    Case(
        "override_remove_missing_package",
        f"{OVERLAY}:3:40",
        "image 'base' does not install 'curll' (deb)",
        "did you mean 'curl'?",
        WITH_OVERLAY,
    ),
    Case(
        "override_remove_inherited_package",
        f"{OVERLAY}:1:54",
        "image 'keystone-base' does not install 'less' (deb)",
        "'less' is installed by its ancestor 'base': override('base', ...) instead",
        WITH_OVERLAY,
    ),
    Case(
        "override_unknown_parent",
        f"{OVERLAY}:1:31",
        "image 'keystone' has unknown parent 'bsae'",
        "did you mean 'base'?",
        WITH_OVERLAY,
    ),
    Case(
        "override_disable_unknown",
        f"{OVERLAY}:1:48",
        "cannot disable 'debain': it is neither a distro nor a platform",
        "did you mean 'debian'?",
        WITH_OVERLAY,
    ),
    Case(
        "override_missing_file",
        f"{OVERLAY}:3:14",
        "image 'keystone': context file 'vendor/mtod' does not exist",
        "did you mean 'motd'?",
        WITH_OVERLAY,
    ),
    Case(
        "override_unknown_argument",
        f"{OVERLAY}:1:22",
        "override() got an unknown argument 'packges_append'",
        "did you mean 'packages_append'?",
        WITH_OVERLAY,
    ),
    Case(
        "overlay_missing_directory",
        "BUILD/settings.kb:1:70",
        "overlay directory 'vendr' does not exist",
        "did you mean 'vendor'?",
    ),
    Case(
        "overlay_settings",
        f"{OVERLAY}:2:1",
        "settings() in overlay vendor: build settings belong to the workspace",
        "set them in the workspace's BUILD/, or give them on the command line",
        WITH_OVERLAY,
    ),
    Case(
        "overlay_load_missing",
        f"{OVERLAY}:1:6",
        "cannot load 'helpers.kb': no such file vendor/helpers.kb",
        "did you mean 'helper.kb'?",
        WITH_OVERLAY,
    ),
    Case(
        "overlay_inside_the_tree",
        None,
        "/recipes/vendor' overlaps the workspace's recipes",
        "the main tree's .kb files are evaluated once; keep overlays in a directory of their own",
        ("list", "--overlay", "{workspace}/recipes/vendor"),
    ),
    Case(
        "pip_archive_checksum",
        f"{OVERLAY}:3:73",
        "vendor/keystone-27.0.0-py3-none-any.whl has sha256 95eddf27",
        "if the new archive is the one you want, put its sha256 in pip(sha256 = ...)",
        WITH_OVERLAY,
    ),
    Case(
        "pip_archive_without_checksum",
        f"{OVERLAY}:1:35",
        "pip(): argument 'archive': needs its checksum",
        "add sha256 = '...' (sha256sum keystone-27.0.0-py3-none-any.whl)",
        WITH_OVERLAY,
    ),
    Case(
        "pip_url_without_checksum",
        f"{OVERLAY}:1:46",
        "'keystone @ https://acme.example/keystone-27.0.0.tar.gz' has no checksum",
        "append #sha256=<digest of the file> to the URL; pip checks it",
        WITH_OVERLAY,
    ),
    Case(
        "pip_git_unpinned",
        f"{OVERLAY}:1:35",
        "'keystone @ git+https://git.acme.example/keystone.git@stable/2025.1' does not pin a commit",
        "name @ git+https://host/repo.git@<the full 40-hex commit id>",
        WITH_OVERLAY,
    ),
    # --- hostile input: nothing injects an instruction, evaluation is bounded (issue 10) ----
    Case(
        "block_continuation",
        "recipes/bad/bad.kb:1:59",
        "image(): argument 'blocks': key 'footer': item 0: 'RUN true \\\\' ends in a line continuation",
        "a block entry is exactly one instruction; use && within a RUN, or one entry per instruction",
    ),
    Case(
        "block_copy_from",
        "recipes/bad/bad.kb:1:59",
        "image(): argument 'blocks': key 'footer': item 0: 'COPY --from=evil.example/x:latest / /' takes files from another image",
        "an image is built from its parent only; a stage or image in --from= would not be pinned",
    ),
    Case(
        "block_from",
        "vendor/overlay.kb:3:26",
        "override(): argument 'blocks': key 'header': item 0: 'FROM evil.example/root:latest' is not an allowed Dockerfile instruction: FROM is not allowed in a block",
        "a block entry is one instruction: ADD, ARG, CMD, COPY, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, RUN, SHELL, STOPSIGNAL, USER, VOLUME, WORKDIR",
        WITH_OVERLAY,
    ),
    Case(
        "block_newline",
        "vendor/overlay.kb:1:51",
        "override(): argument 'blocks_replace': key 'footer': item 0: 'RUN true\\nUSER root' holds the control character '\\n'",
        "a block entry is one line of printable text",
        WITH_OVERLAY,
    ),
    Case(
        "block_onbuild",
        "recipes/bad/bad.kb:1:59",
        "image(): argument 'blocks': key 'footer': item 0: 'ONBUILD RUN id' is not an allowed Dockerfile instruction: ONBUILD is not allowed in a block",
        "a block entry is one instruction: ADD, ARG, CMD, COPY, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, RUN, SHELL, STOPSIGNAL, USER, VOLUME, WORKDIR",
    ),
    Case(
        "env_value_newline",
        "recipes/bad/bad.kb:1:45",
        "image 'bad': env 'A' holds the control character '\\n'",
        "a value in a Dockerfile is one line of printable text",
        ("render", "bad"),
    ),
    Case(
        "epoch_negative",
        "BUILD/settings.kb:1:58",
        "settings(): argument 'source_date_epoch': -1 is not a timestamp (0 to 9223372036854775807)",
        "source_date_epoch: timestamp of every file and image (a lock's wins)",
    ),
    Case(
        "eval_allocation",
        "recipes/bad/bad.kb:1:6",
        "evaluation makes more than 10000000 items of values",
        "recipes declare images; a value this large is a mistake",
    ),
    Case(
        "eval_format_width",
        "recipes/bad/bad.kb:1:5",
        "string.format(): width or precision 2000000000 is larger than 100",
        "recipes declare images; a value this large is a mistake",
    ),
    Case(
        "eval_int_growth",
        "recipes/bad/bad.kb:3:9",
        "'*' would make an int of more than 4096 bits",
        "ints in recipes are ids, counts and timestamps",
    ),
    Case(
        "eval_join_growth",
        "recipes/bad/bad.kb:1:5",
        "string.join() would make a value of 2001999 items (the limit is 1000000)",
        "recipes declare images; a value this large is a mistake",
    ),
    Case(
        "eval_list_extend_doubling",
        "recipes/bad/bad.kb:4:9",
        "list.extend() would make a value of 1048576 items (the limit is 1000000)",
        "recipes declare images; a value this large is a mistake",
    ),
    Case(
        "eval_nested_range",
        "recipes/bad/bad.kb:4:13",
        "evaluation takes more than 1000000 steps",
        "recipes must be small programs; loop over less, or split the work",
    ),
    Case(
        "eval_percent_star",
        "recipes/bad/bad.kb:1:5",
        "bad '%' format: a '*' width or precision is not allowed",
        "recipes declare images; a value this large is a mistake",
    ),
    Case(
        "eval_percent_width",
        "recipes/bad/bad.kb:1:5",
        "bad '%' format: width or precision 2000000000 is larger than 100",
        "recipes declare images; a value this large is a mistake",
    ),
    Case(
        "eval_replace_growth",
        "recipes/bad/bad.kb:1:5",
        "string.replace() would make a value of 2700002 items (the limit is 1000000)",
        "recipes declare images; a value this large is a mistake",
    ),
    Case(
        "eval_str_of_huge_list",
        "recipes/bad/bad.kb:1:5",
        "str() would make a value of 1001001 items (the limit is 1000000)",
        "recipes declare images; a value this large is a mistake",
    ),
    Case(
        "eval_string_doubling",
        "recipes/bad/bad.kb:3:9",
        "'+' would make a value of 1048576 items (the limit is 1000000)",
        "recipes declare images; a value this large is a mistake",
    ),
    Case(
        "inject_context_dockerignore",
        "recipes/bad/bad.kb:1:30",
        "image(): argument 'files': key '.dockerignore': '.dockerignore' cannot be a context file",
        "a .dockerignore would change the context",
    ),
    Case(
        "inject_context_dotdot",
        "recipes/bad/bad.kb:1:30",
        "image(): argument 'files': key 'sub/../../keystone/start.sh': 'sub/../../keystone/start.sh' is not a relative path",
        "a path relative to this file, without '..', spaces or quotes",
    ),
    Case(
        "inject_env_key",
        "recipes/bad/bad.kb:1:28",
        "image(): argument 'env': key 'PATH=/tmp:$PATH A': 'PATH=/tmp:$PATH A' is not an environment variable name",
        "environment variable names are [A-Za-z_][A-Za-z0-9_]*",
    ),
    Case(
        "inject_file_destination",
        "recipes/bad/bad.kb:1:38",
        "image(): argument 'files': key 'motd': '/etc/motd /etc/shadow' is not an absolute path",
        "an absolute path of letters, digits and _ @ % + = : , . / ~ -, without spaces or quotes",
    ),
    Case(
        "inject_package_newline",
        "recipes/bad/bad.kb:4:33",
        "image(): argument 'packages': key 'deb': item 1: 'less\\nFROM evil.example/root:latest' holds the control character '\\n'",
        "a string is one line of printable text",
    ),
    Case(
        "inject_package_shell",
        "recipes/bad/bad.kb:1:41",
        "image(): argument 'packages': key 'deb': item 0: 'curl; rm -rf /' is not a Debian package name",
        "Debian package names are [a-z0-9][a-z0-9+.-]*",
    ),
    Case(
        "inject_pip_constraint",
        "recipes/bad/bad.kb:1:61",
        "pip(): argument 'constraints': item 0: 'keystone==27.0.0 -c /etc/x' is not a pip requirement",
        "one PEP 508 requirement: 'name', 'name==1.0', 'name[extra]>=1', 'name @ https://...#sha256=...'; pip options are not allowed",
    ),
    Case(
        "inject_pip_newline",
        "recipes/bad/bad.kb:1:34",
        "pip(): argument 'requirements': item 0: 'keystone\\n--extra-index-url=https://evil.example' holds the control character '\\n'",
        "a pip requirement is one line of printable text",
    ),
    Case(
        "inject_pip_option",
        "recipes/bad/bad.kb:1:34",
        "pip(): argument 'requirements': item 1: '--index-url https://evil.example/simple' is not a pip requirement",
        "one PEP 508 requirement: 'name', 'name==1.0', 'name[extra]>=1', 'name @ https://...#sha256=...'; pip options are not allowed",
    ),
    Case(
        "inject_rpm_package_space",
        "recipes/bad/bad.kb:1:41",
        "image(): argument 'packages': key 'rpm': item 0: 'python3-PyMySQL --nogpgcheck' is not a package name",
        "package names are letters, digits and + . _ ~ ^ -, no spaces",
    ),
    Case(
        "inject_user_groups",
        "recipes/bad/bad.kb:1:60",
        "user(): argument 'groups': item 0: 'adm; id' is not a POSIX user name",
        "user names are [a-z_][a-z0-9_-]*, at most 32 characters",
    ),
    Case(
        "inject_user_home",
        "recipes/bad/bad.kb:1:57",
        "user(): argument 'home': '/srv/$(id)' is not an absolute path",
        "an absolute path of letters, digits and _ @ % + = : , . / ~ -, without spaces or quotes",
    ),
    Case(
        "inject_user_name",
        "recipes/bad/bad.kb:1:33",
        "user(): argument 'name': 'svc;id' is not a POSIX user name",
        "user names are [a-z_][a-z0-9_-]*, at most 32 characters",
    ),
    Case(
        "inject_user_shell_newline",
        "recipes/bad/bad.kb:1:58",
        "user(): argument 'shell': '/bin/sh\\nUSER root' holds the control character '\\n'",
        "an absolute path is one line of printable text",
    ),
    Case(
        "inject_venv",
        "recipes/bad/bad.kb:1:53",
        "pip(): argument 'venv': '/opt/venv; id' is not an absolute path",
        "an absolute path of letters, digits and _ @ % + = : , . / ~ -, without spaces or quotes",
    ),
    Case(
        "label_key_control",
        "recipes/bad/bad.kb:1:31",
        "image(): argument 'labels': key 'a\\x1b[31m': 'a\\x1b[31m' holds the control character '\\x1b'",
        "a string is one line of printable text",
    ),
    Case(
        "lone_surrogate",
        "recipes/bad/bad.kb:1:35",
        "bad escape in string: a lone surrogate is not a character",
        "write the character itself",
    ),
    Case(
        "overlay_outside_workspace",
        "BUILD/settings.kb:1:70",
        "overlay directory '../outside' is outside the workspace",
        "settings(overlays = ...) names directories of the workspace; give another one on the command line: --overlay DIR",
    ),
    Case("profile_backtracking", "BUILD/profiles.kb:2:1", "profile 'evil': '^(a+)+$' matches no image"),
    Case(
        "profile_lookahead",
        "BUILD/profiles.kb:2:1",
        "profile 'evil': bad regular expression '^(?=key)': not supported in linear time: invalid perl operator: (?=",
        "patterns are RE2 regular expressions, matched in linear time: no lookaround or backreferences",
    ),
    Case(
        "registry_with_space",
        "BUILD/settings.kb:1:29",
        "settings(): argument 'registry': 'evil.example --push' is not one word without spaces",
        "registry: registry host[:port] of the tags",
    ),
    Case(
        "uid_huge_int",
        "recipes/bad/bad.kb:1:46",
        "int(): Exceeds the limit (4300 digits) for integer string conversion: value has 5000 digits; use sys.set_int_max_str_digits() to increase the limit",
    ),
    Case(
        "uid_out_of_range",
        "recipes/bad/bad.kb:1:40",
        "user(): argument 'uid': 99999999999 is not a user or group id (0 to 2147483647)",
        "uid: fixed user id",
    ),
    Case(
        "user_groups_unsupported_by_family",
        "recipes/bad/bad.kb:1:21",
        "image 'bad': user 'svc' has groups, but family 'deb' cannot add them",
        "put {groups} in family('deb', add_user = ...), e.g. useradd --groups {groups}",
    ),
    Case(
        "too_many_declarations",
        "recipes/bad/bad.kb:2:5",
        "more than 10000 declarations",
        "a workspace declares hundreds of images, not tens of thousands",
    ),
    Case(
        "type_list_too_long",
        "recipes/bad/bad.kb:1:38",
        "image(): argument 'packages': key 'deb': 1000000 items is more than 10000",
        "an image lists tens of packages, not thousands; split it into images",
    ),
    Case(
        "cli_overlay_proc",
        None,
        "overlay directory '/proc' is a pseudo-filesystem",
        args=("list", "--overlay", "/proc"),
    ),
    # --- the command line: no file to point at -----------------------------------------------
    Case("cli_unknown_profile", None, "unknown profile 'cor'", "did you mean 'core'?", ("list", "-p", "cor")),
    Case(
        "cli_unknown_distro",
        None,
        "unknown distro 'debain'",
        "did you mean 'debian'?",
        ("compile", "-d", "debain"),
    ),
    Case(
        "cli_unknown_release",
        None,
        "distro 'debian' has no release 'bookwrm'",
        "did you mean 'bookworm'?",
        ("compile", "-r", "bookwrm"),
    ),
    Case(
        "cli_pattern_matches_nothing",
        None,
        "argument 'keystone-bse' matches no image",
        "did you mean 'keystone-base'?",
        ("list", "keystone-bse"),
    ),
    Case(
        "cli_unknown_platform",
        None,
        "unknown platform 'linux/arm64'",
        "did you mean 'linux/amd64'?",
        ("compile", "--platform", "linux/arm64"),
    ),
]


def _excerpt(lines: list[str], workspace: Path, where: str) -> None:
    """`where` is shown as `--> path:line:column`, then its source line, then a caret under the column."""
    path, line, column = where.rsplit(":", 2)
    arrow = f"  --> {where}"
    assert arrow in lines, f"{arrow!r} not in stderr:\n" + "\n".join(lines)
    at = lines.index(arrow)
    source = (workspace / path).read_bytes().decode("utf-8", "replace").split("\n")[int(line) - 1]
    gutter = " " * len(line)
    assert lines[at + 1 : at + 4] == [
        f" {gutter} |",
        f" {line} | {source.removesuffix(chr(13)).expandtabs(1)}",
        f" {gutter} | {' ' * (int(column) - 1)}^",
    ]


def corpus_files(name: str) -> dict[str, bytes]:
    """The files of tests/broken/NAME, by workspace-relative path (none if it does not exist)."""
    directory = CORPUS / name
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_bad_input(case: Case, workspace_factory: MakeWorkspace, tmp_path: Path) -> None:
    workspace = workspace_factory(corpus_files(case.name))
    args = [*(a.replace("{workspace}", str(workspace)) for a in case.args), "-C", workspace]
    if case.args[0] == "compile":
        args += ["--output", tmp_path / "bake.json", "--build-dir", tmp_path / "build"]

    result = run_kbuild(*args, cwd=tmp_path)

    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, result.stderr
    assert not (tmp_path / "bake.json").exists()
    lines = result.stderr.split("\n")  # not splitlines(): source lines may hold \f
    assert lines[0].startswith("error: "), result.stderr
    assert case.message in lines[0]
    if case.where is None:
        assert "-->" not in result.stderr
    else:
        assert lines[1] == f"  --> {case.where}"
        for where in (case.where, *case.notes):
            _excerpt(lines, workspace, where)
    if case.hint is not None:
        assert f"hint: {case.hint}" in lines, result.stderr


def test_every_corpus_directory_has_a_case() -> None:
    assert {p.name for p in CORPUS.iterdir() if p.is_dir()} <= {case.name for case in CASES}
    assert len({case.name for case in CASES}) == len(CASES)


def test_the_minimal_workspace_is_valid(tmp_path: Path) -> None:
    """The cases break it on purpose; unbroken it compiles."""
    workspace = make_workspace(tmp_path / "workspace")
    bake = tmp_path / "bake.json"
    result = run_kbuild(
        "compile", "-C", workspace, "--output", bake, "--build-dir", tmp_path / "build", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert bake.is_file()


@pytest.mark.parametrize("name", ["macro_call_chain", "macro_fail", "recursion_mutual"])
def test_macro_errors_show_the_call_chain(
    name: str, workspace_factory: MakeWorkspace, tmp_path: Path
) -> None:
    """One `called from` note per running macro, innermost first, each at its call site."""
    case = next(c for c in CASES if c.name == name)
    workspace = workspace_factory(corpus_files(name))

    result = run_kbuild("list", "-C", workspace, cwd=tmp_path)

    notes = [line for line in result.stderr.split("\n") if line.startswith("note: ")]
    assert notes == [f"note: called from {where}" for where in case.notes], result.stderr

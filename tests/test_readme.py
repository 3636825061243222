"""The README can only name what exists: make targets, jobs and their flags, sample API flags, config keys, files.

No Spark: the jobs' parsers, the config schema and the Makefile are read as they are.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

import pytest

from multiverse_etl import config, config_overrides, glue
from multiverse_etl.entrypoints import JOBS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_BYTES = 15 * 1024

FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`([^`\n]+)`")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9_.-]*")


def code_blocks(text: str) -> list[str]:
    return FENCE.findall(text)


def inline_spans(text: str) -> list[str]:
    return INLINE.findall(FENCE.sub("", text))


def code_lines(text: str) -> list[str]:
    """Every line of every fenced block, and every inline code span: where commands are shown."""
    return [line for block in code_blocks(text) for line in block.splitlines()] + inline_spans(text)


def makefile_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z][\w-]*):", (ROOT / "Makefile").read_text(), re.M))


def flags_of(parser: argparse.ArgumentParser) -> set[str]:
    # argparse has no public list of a parser's flags: `_actions` is how its own help is built.
    return {option for action in parser._actions for option in action.option_strings}


def job_flags(name: str) -> set[str]:
    return flags_of(JOBS[name].parser()) | {"--dry-run"}  # submit.parse_job_argv adds --dry-run


def sample_api_flags() -> dict[str, set[str]]:
    from sample_api.__main__ import _parser

    parser = _parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {name: flags_of(sub) for name, sub in commands.choices.items()}


def config_keys() -> set[str]:
    return {f"{section}.{field.name}" for section, cls in config.SECTIONS.items() for field in dataclasses.fields(cls)}


# ---------------------------------------------------------------- what the README names


def named_make_targets(text: str) -> set[str]:
    return {m for line in code_lines(text) for m in re.findall(r"(?:^|[\s;&(])make ([a-z][\w-]*)", line)}


def shown_job_commands(text: str) -> list[tuple[str, set[str]]]:
    """(job, its flags) for every `./spark-submit.sh <job> …` and every inline span that starts with a job name and
    shows a flag (`pipeline --mode incremental`). A shell comment ends the command."""
    found = []
    for line in code_lines(text):
        command = line.split(" #", 1)[0]
        words = command.split()
        if "./spark-submit.sh" in words:
            rest = words[words.index("./spark-submit.sh") + 1 :]
            if rest and rest[0] != "--help":
                found.append((rest[0], set(FLAG.findall(" ".join(rest[1:])))))
        elif words and words[0] in JOBS and FLAG.search(command):
            found.append((words[0], set(FLAG.findall(command))))
    return found


def shown_sample_api_commands(text: str) -> list[tuple[str, set[str]]]:
    found = []
    for line in code_lines(text):
        command = line.split(" #", 1)[0]
        match = re.search(r"-m sample_api (\w+)(.*)", command)
        if match:
            found.append((match.group(1), set(FLAG.findall(match.group(2)))))
    return found


def named_config_keys(text: str) -> set[str]:
    """`section.key` spans (with an optional `=value`, `: value` or deeper `spark.conf.…` path), `--set` and Glue
    `--set__` values, and MV__SECTION__KEY variables, for the sections config.py declares."""
    sections = "|".join(config.SECTIONS)
    keys = set()
    for span in inline_spans(text):
        for part in re.split(r",\s*", span):
            part = re.sub(r"^--set(__|\s+)", "", part.strip())  # --set KEY=VALUE, Glue's --set__KEY VALUE
            match = re.fullmatch(rf"({sections})\.(\w+)(\.[\w.]+)?(\s*[=:].*|\s*/\s*\d+|\s+\S+)?", part)
            if match:
                keys.add(f"{match.group(1)}.{match.group(2)}")
    for section, key in re.findall(r"\bMV__([A-Z]+)__([A-Z_]+)\b", text):
        if section.lower() in config.SECTIONS:
            keys.add(f"{section.lower()}.{key.lower()}")
    keys.discard("section.key")
    return keys


# ---------------------------------------------------------------- the checks


@pytest.fixture(scope="module")
def text() -> str:
    return README.read_text()


def test_the_readme_is_at_most_15_kb():
    assert README.stat().st_size <= MAX_BYTES, README.stat().st_size


def test_every_make_target_the_readme_names_exists(text):
    named = named_make_targets(text)
    assert {"demo", "test"} <= named  # the two commands of the quick start
    assert named <= makefile_targets(), named - makefile_targets()


def test_the_quick_start_shows_exactly_the_two_commands(text):
    quick_start = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = code_blocks(quick_start)[0]
    assert [line.split("#")[0].strip() for line in block.splitlines()] == ["make demo", "make test"]


def test_every_job_the_readme_runs_exists_and_takes_the_flags_shown(text):
    commands = shown_job_commands(text)
    assert {job for job, _ in commands} == set(JOBS), "every job is shown at least once"
    for job, flags in commands:
        assert job in JOBS, job
        assert flags <= job_flags(job), (job, flags - job_flags(job))


def test_every_flag_the_readme_names_is_taken_by_a_job_the_sample_api_or_glue(text):
    """A flag named on its own (`--rebuild-gold`, a Glue parameter, a replica fault) must exist somewhere."""
    glue_parameters = {f"--{name}" for name in [*glue.job_parameters(), *glue.REQUIRED]}
    known = set().union(*(job_flags(name) for name in JOBS), *sample_api_flags().values(), glue_parameters)
    for span in inline_spans(text):
        for flag in FLAG.findall(span) if span.startswith("--") else []:
            if flag.startswith("--" + glue.SET_PREFIX):
                continue  # Glue's --set__KEY form, checked as a config key below
            assert flag in known or flag in GLUE_OWN_PARAMETERS, flag


# Glue's own job parameters (not the project's), named in the README's Glue table.
GLUE_OWN_PARAMETERS = {
    "--datalake-formats",
    "--extra-py-files",
    "--extra-files",
    "--additional-python-modules",
    "--conf",
}


def test_every_sample_api_command_takes_the_flags_shown(text):
    parsers = sample_api_flags()
    commands = shown_sample_api_commands(text)
    assert {command for command, _ in commands} == {"serve", "dump"}
    for command, flags in commands:
        assert flags <= parsers[command], (command, flags - parsers[command])


def test_every_config_key_the_readme_names_exists(text):
    named = named_config_keys(text)
    assert len(named) > 20, "the configuration table was not found"
    assert named <= config_keys(), named - config_keys()


def test_every_config_key_is_in_the_readme(text):
    assert config_keys() <= named_config_keys(text), config_keys() - named_config_keys(text)


def test_every_env_variable_the_readme_names_is_read_by_the_code(text):
    code = "\n".join(path.read_text() for path in (ROOT / "lib").rglob("*.py")) + (ROOT / "spark-submit.sh").read_text()
    for name in set(re.findall(r"\bMV_[A-Z_]+\b", text)):
        assert f'"{name}"' in code or name in config_overrides.ENV_ALIASES or f"{name}=" in code, name


def test_every_local_link_and_path_the_readme_names_exists(text):
    links = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text)
    paths = re.findall(r"\b((?:jobs|conf|docs|lib|notebooks|sample_api)/[\w./-]+\.(?:py|yaml|md|ipynb))\b", text)
    assert links and paths
    for path in [*links, *paths]:
        assert (ROOT / path).exists(), path


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_anchor_the_readme_links_to_is_a_heading_of_that_file(text):
    anchors = re.findall(r"\]\(([^)#:]+)#([^)]+)\)", text)
    assert anchors
    for path, anchor in anchors:
        headings = re.findall(r"^#+ (.+)$", (ROOT / path).read_text(), re.M)
        assert anchor in {slug(heading) for heading in headings}, (path, anchor)


# ---------------------------------------------------------------- the checks catch what they are for


def test_the_checks_fail_on_a_target_a_flag_or_a_key_that_does_not_exist():
    bad = (
        "```bash\nmake deploy\n./spark-submit.sh transform --env local --no-such-flag\n```\n"
        "`extract --rebuild-gold`, `api.page_limit`, `--set__api.page_max 5`, `MV__API__PAGE_LIMIT=1`\n"
    )
    assert "deploy" not in makefile_targets() and "deploy" in named_make_targets(bad)
    assert [("transform", {"--env", "--no-such-flag"}), ("extract", {"--rebuild-gold"})] == shown_job_commands(bad)
    assert not {"--no-such-flag"} <= job_flags("transform") and not {"--rebuild-gold"} <= job_flags("extract")
    assert named_config_keys(bad) == {"api.page_limit", "api.page_max"}
    assert not named_config_keys(bad) & config_keys()

"""The jobs' command lines: what each job accepts (the jobs themselves run in test_submit and test_pipeline)."""

from __future__ import annotations

import pytest

from multiverse_etl.entrypoints import JOBS


@pytest.mark.parametrize("job", ["transform", "pipeline"])
def test_transform_and_pipeline_take_rebuild_gold_and_merge_by_default(job):
    make_parser, _ = JOBS[job]
    assert make_parser().parse_args(["--env", "local", "--rebuild-gold"]).rebuild_gold is True
    assert make_parser().parse_args(["--env", "local"]).rebuild_gold is False


def test_maintain_and_extract_do_not_take_rebuild_gold(capsys):
    for job in ("maintain", "extract"):
        with pytest.raises(SystemExit):
            JOBS[job][0]().parse_args(["--env", "local", "--rebuild-gold"])
    assert "--rebuild-gold" in capsys.readouterr().err

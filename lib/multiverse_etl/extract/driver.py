"""One extraction run: lists → landing parts → manifest (the commit) → watermark.

Programmes and apprenticeships are walked page by page and streamed into parts as they
come. The apprenticeship ids feed the projects fan-out (`fanout.py`), whose `api.concurrency`
workers list one apprenticeship's projects each. Everything happens in one event loop; the only threads
are the part writes. The manifest is written last; the watermark moves only after it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import Any, Optional

from ..config import Config
from ..entities import APPRENTICESHIPS, ENTITIES, PROGRAMMES, PROJECTS, EntitySpec
from ..landing import (
    FINGERPRINT_SCHEME,
    EntityManifest,
    Manifest,
    check_run_id,
    new_run_id,
    read_manifest,
    write_manifest,
)
from ..lock import check_still_held
from ..storage import Storage, open_storage
from .aio import all_or_nothing, run_async
from .credentials import Credentials, resolve_credentials
from .errors import ExtractError, ResumeError
from .fanout import ProjectsFanout
from .http import ApiClient, ClientSettings
from .lines import landed_page
from .paginate import PageSize, paginate, utc_now_iso
from .progress import FanoutState, Progress, summary_extra, summary_lines
from .redaction import RedactingFilter, safe_url, scrubbed_logs
from .resume import PriorAttempt, take_over
from .server_clock import server_now
from .state import (
    ExtractPlan,
    WatermarkTracker,
    advance_watermark,
    capped_watermark,
    extraction_start,
    later_watermark,
    modified_after_for,
    read_run_plan,
    read_watermark,
    write_run_plan,
)
from .writer import PartWriter

log = logging.getLogger("multiverse_etl.extract")

MODES = ("full", "incremental")
# The apprenticeships listing that only discovers parents for the fan-out: its requests are counted as its own.
PARENTS_ENTITY = "parents"


@dataclass(frozen=True)
class ExtractResult:
    run_id: str
    manifest: Manifest  # as committed (its JSON, `Manifest.to_json`, is what was written)
    manifest_key: str


def run_extract(
    config: Config,
    *,
    mode: Optional[str] = None,
    resume_run_id: Optional[str] = None,
    storage: Optional[Storage] = None,
    credentials: Optional[Credentials] = None,
) -> ExtractResult:
    """Export the API into raw landing files and commit the run with its manifest.

    `mode` overrides extract.mode; `resume_run_id` finishes an interrupted run instead of
    starting one. Raises ExtractError subclasses (EtlError: one line for the user) on failure; a run that fails
    after it started can be finished with `resume_run_id`.
    """
    if mode is not None and mode not in MODES:
        raise ExtractError(f"mode must be one of {list(MODES)}, got {mode!r}")
    storage = storage or open_storage(config.lake.root, config.s3)
    credentials = credentials or resolve_credentials(config.api, config.s3.region)
    redactor = RedactingFilter()
    redactor.add(credentials.password.reveal())
    with scrubbed_logs(redactor):
        plan = _plan(storage, config, mode, resume_run_id)
        run = _Run(config, storage, credentials, plan, redactor)
        try:
            committed = run_async(run.execute())
        except BaseException as exc:
            if run.lake_touched:
                log.warning(
                    "extract run %s stopped before its manifest (%s); finish it with --resume %s",
                    plan.run_id,
                    type(exc).__name__,
                    plan.run_id,
                )
            raise
        check_still_held()  # fenced: under a lake lock that was lost, nothing is committed
        key = write_manifest(storage, committed)
        manifest = committed.to_json()
        advance_watermark(storage, committed.watermark_after, plan.run_id, committed.finished_at)
        for row in summary_lines(manifest):
            log.info("extract summary | %s", row)
        log.info("extract run %s committed: %s", plan.run_id, storage.uri(key), extra=summary_extra(manifest))
    return ExtractResult(plan.run_id, committed, key)


def _plan(storage: Storage, config: Config, mode: Optional[str], resume_run_id: Optional[str]) -> ExtractPlan:
    """A new run's plan, or the stored plan of the run to resume (with its attempt counted)."""
    if resume_run_id is None:
        mode = mode or config.extract.mode
        watermark = read_watermark(storage)
        return ExtractPlan(
            run_id=new_run_id(),
            mode=mode,
            projects_scope=config.extract.projects_scope if mode == "incremental" else "all",
            api_url=safe_url(config.api.url),
            started_at=utc_now_iso(),
            watermark_before=watermark,
            modified_after=modified_after_for(watermark, config.extract.lookback_seconds)
            if mode == "incremental"
            else None,
        )
    run_id = check_run_id(resume_run_id)
    manifest = read_manifest(storage, run_id)
    if manifest is not None and manifest.status == "committed":
        raise ResumeError(
            f"run {run_id} is already committed ({storage.uri('raw/_manifests/' + run_id + '.json')}); nothing to resume"
        )
    plan = read_run_plan(storage, run_id)
    if plan is None:
        raise ResumeError(f"no run {run_id} was started in {storage.uri()} (no extract state for it)")
    if mode is not None and mode != plan.mode:
        raise ResumeError(f"run {run_id} was started in {plan.mode} mode; resume it without --mode {mode}")
    return dataclasses.replace(plan, attempt=plan.attempt + 1)


class _Run:
    """The state of one attempt of one run (async; built and executed in `run_extract`)."""

    def __init__(
        self, config: Config, storage: Storage, credentials: Credentials, plan: ExtractPlan, redactor: RedactingFilter
    ) -> None:
        self.config = config
        self.storage = storage
        self.credentials = credentials
        self.plan = plan
        self.redactor = redactor
        self.run_id = plan.run_id
        self.lake_touched = False
        self.watermark = WatermarkTracker()
        self.server_start: Optional[dt.datetime] = None  # the server's clock at the start (Date header)
        self.fanout = FanoutState()
        page_size = config.api.page_size
        self.page_sizes = {spec.name: PageSize(page_size, spec.name) for spec in ENTITIES}
        # An incremental run that lists projects of *all* apprenticeships needs every id, not only the changed ones.
        self.discover_parents = (
            plan.mode == "incremental" and plan.projects_scope == "all" and plan.modified_after is not None
        )

    async def execute(self) -> Manifest:
        config, plan = self.config, self.plan
        client = self.client = ApiClient(
            ClientSettings.from_config(config.api), self.credentials, on_token=self.redactor.add
        )
        started = time.monotonic()
        async with client:
            log.info(
                "extract run %s (attempt %d) starting: mode=%s projects_scope=%s modified_after=%s api=%s "
                "lake=%s page_size=%d concurrency=%d (%s) max_rps=%s user=%s (credentials from %s)",
                self.run_id,
                plan.attempt,
                plan.mode,
                plan.projects_scope,
                plan.modified_after,
                safe_url(config.api.url),
                self.storage.uri(),
                config.api.page_size,
                config.api.concurrency,
                config.api.concurrency_mode,
                config.api.max_requests_per_second,
                self.credentials.username,
                self.credentials.source,
            )
            await client.login()  # a wrong password fails here, before the lake is touched
            self.server_start = await server_now(config.api)  # the watermark never passes the start
            prior = await asyncio.to_thread(self._start_in_lake)
            self.fanout.done_before = len(prior.done_parents)
            max_bytes = config.extract.part_max_bytes
            # A fanned-out entity (projects) keeps the parts of complete parents an earlier attempt wrote.
            self.writers = {
                spec.name: PartWriter(
                    self.storage,
                    spec.name,
                    self.run_id,
                    max_bytes,
                    prior_parts=prior.project_parts if spec.parent else (),
                )
                for spec in ENTITIES
            }
            self.projects = ProjectsFanout(
                self.writers[PROJECTS.name],
                self.page_sizes[PROJECTS.name],
                self.run_id,
                workers=config.api.concurrency,
                max_restarts=config.api.max_list_restarts,
                done_before=prior.done_parents,
                state=self.fanout,
            )
            progress = Progress(client, self.fanout, self._landed_totals, config.extract.progress_interval_s)
            reporter = asyncio.create_task(progress.run())
            try:
                await self._all_lists(client)
            finally:
                reporter.cancel()
                await asyncio.gather(reporter, return_exceptions=True)
            progress.log_line()
        return self._manifest(time.monotonic() - started)

    def _start_in_lake(self) -> PriorAttempt:
        """Record the plan (so the run can be resumed) and take over what an earlier attempt left."""
        self.lake_touched = True
        write_run_plan(self.storage, self.plan)
        return take_over(self.storage, self.run_id) if self.plan.attempt > 1 else PriorAttempt()

    async def _all_lists(self, client: ApiClient) -> None:
        params = {"modified_after": self.plan.modified_after} if self.plan.modified_after is not None else {}
        jobs = [
            self._land_list(client, PROGRAMMES, {}, feed=False),
            self._land_list(client, APPRENTICESHIPS, params, feed=not self.discover_parents),
        ]
        if self.discover_parents:
            jobs.append(self._discover_parents(client))
        jobs += [self.projects.worker(client) for _ in range(self.config.api.concurrency)]
        await all_or_nothing(jobs)
        await self.writers[PROJECTS.name].close()

    async def _land_list(self, client: ApiClient, spec: EntitySpec, params: dict[str, Any], feed: bool) -> None:
        """Walk one list, landing every page; the apprenticeships list may also feed the fan-out.

        The watermark follows the list's change marker (apprenticeships' modified_date).
        """
        entity, path, tracked = spec.name, spec.api_path, spec.change_marker is not None
        writer = self.writers[entity]
        walked = 0
        async for page in paginate(
            client,
            entity=entity,
            path=path,
            page_size=self.page_sizes[entity],
            params=params,
            max_restarts=self.config.api.max_list_restarts,
        ):
            if page.page_index == 0 and walked:  # the list restarted: what this walk landed goes
                await writer.discard()
                if tracked:
                    self.watermark.reset()
                walked = 0
            walked += 1
            line, fingerprints = landed_page(page, self.run_id, None)
            await writer.add((line,), len(page.data), (fingerprints,))
            if tracked:
                self.watermark.observe(page.data)
            if feed:
                await self.projects.feed(page.data)
        await writer.close()
        if feed:
            await self.projects.end_feed()

    async def _discover_parents(self, client: ApiClient) -> None:
        """Every apprenticeship id (no modified_after) for an incremental run with projects_scope 'all'; not landed."""
        async for page in paginate(
            client,
            entity=PARENTS_ENTITY,
            path=APPRENTICESHIPS.api_path,
            page_size=self.page_sizes[APPRENTICESHIPS.name],
            max_restarts=self.config.api.max_list_restarts,
        ):
            await self.projects.feed(page.data)  # a restart re-feeds ids: the parent set drops repeats
        await self.projects.end_feed()

    def _landed_totals(self) -> tuple[int, int]:
        writers = getattr(self, "writers", {})
        return sum(w.pages for w in writers.values()), sum(w.records for w in writers.values())

    def _manifest(self, duration_s: float) -> Manifest:
        plan, counts = self.plan, self.client.counts
        entities: dict[str, EntityManifest] = {}
        for spec in ENTITIES:
            writer, counter = self.writers[spec.name], counts.entity(spec.name)
            parts = tuple(writer.parts)
            if spec.parent is not None:  # one listing per parent: complete when every parent was listed
                complete = plan.projects_scope == "all" or plan.modified_after is None
            else:  # a list filtered by its change marker holds the changed rows only
                complete = spec.change_marker is None or plan.modified_after is None
            fanned_out = spec.parent is not None
            entities[spec.name] = EntityManifest(
                pages=sum(p.pages for p in parts),
                records=sum(p.records for p in parts),
                complete_listing=complete,
                parts=parts,
                requests=counter.requests,
                retries=counter.retries,
                parents=self.fanout.done + self.fanout.done_before if fanned_out else None,
                parents_skipped=self.projects.skipped if fanned_out else None,
                digest=writer.digest.text() if writer.digest is not None else None,
            )
        if self.watermark.ignored:
            log.warning(
                "%d apprenticeship(s) have a modified_date that is not a timestamp (or is in the future): "
                "landed, but not taken for the watermark",
                self.watermark.ignored,
            )
        return Manifest(
            run_id=self.run_id,
            mode=plan.mode,
            projects_scope=plan.projects_scope,
            api_url=safe_url(self.config.api.url),
            started_at=plan.started_at,
            finished_at=utc_now_iso(),
            duration_s=round(duration_s, 3),
            attempt=plan.attempt,
            watermark_before=plan.watermark_before,
            watermark_after=later_watermark(
                plan.watermark_before,
                capped_watermark(self.watermark.value, extraction_start(plan.started_at, self.server_start)),
            ),
            modified_after=plan.modified_after,
            requests=counts.requests,
            retries=counts.retries,
            logins=self.client.auth.logins,
            client=self.client.to_manifest(),
            entities=entities,
            record_fingerprints=FINGERPRINT_SCHEME,
        )

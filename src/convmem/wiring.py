"""The composition root: the one place that connects the domains.

Domains import one way (kit -> accounts -> operations -> stores -> identity ->
traits -> profiles -> ingest -> imports -> datasets -> mappings). What a lower
domain's change asks of a higher one is a hook it fires; the handlers are
connected here. Background job handlers of every domain are collected here
too. Add a new domain's hooks and jobs below.
"""

from __future__ import annotations

import functools

from convmem.accounts import service as accounts
from convmem.identity import service as identity
from convmem.imports import tasks as import_tasks
from convmem.imports.storage import storage_for
from convmem.kit.context import AppContext
from convmem.kit.db import Database
from convmem.kit.hooks import Hooks
from convmem.mappings import service as mappings
from convmem.mappings import tasks as mapping_tasks
from convmem.operations.jobs import JobHandler, JobHandlers
from convmem.profiles import service as profiles
from convmem.profiles import tasks as profile_tasks
from convmem.settings import Settings
from convmem.stores import tasks as store_tasks
from convmem.traits import service as traits


def hooks() -> Hooks:
    wired = Hooks()
    wired.store_created.connect(identity.create_defaults)
    wired.store_created.connect(traits.create_defaults)
    wired.id_configs_changing.connect(traits.keep_promotions)
    wired.id_configs_changing.connect(profiles.values_stay_unique)
    wired.traits_removing.connect(mappings.traits_removing)
    wired.dataset_deleting.connect(mappings.dataset_deleting)
    return wired


def jobs(settings: Settings) -> JobHandlers:
    handlers: dict[str, JobHandler] = {}
    # One storage (and, for S3, one boto3 client) for all import jobs, made on first use.
    storage = functools.cache(functools.partial(storage_for, settings))
    import_jobs = import_tasks.jobs(storage, settings)
    sync_jobs = mapping_tasks.jobs(settings)
    for module_jobs in (store_tasks.JOBS, profile_tasks.JOBS, import_jobs, sync_jobs):
        overlap = handlers.keys() & module_jobs.keys()
        if overlap:
            raise RuntimeError(f"two handlers for job kinds {sorted(overlap)}")
        handlers.update(module_jobs)
    return handlers


def context(settings: Settings, db: Database) -> AppContext:
    return AppContext(
        settings=settings,
        db=db,
        verify_credentials=accounts.verify_credentials,
        hooks=hooks(),
        jobs=jobs(settings),
    )

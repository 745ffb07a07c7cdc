"""Run a search end to end: the workers (``search``), then every output (``report.finish``).

The one room that sees both: ``search`` runs trials and knows nothing of the report, and
``report`` reads the study the search left behind.
"""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path
from typing import Any

from auditkit_nas.report import finish
from auditkit_nas.search import (
    Settings,
    _worker_entry,
    check_same_search,
    counted,
    log,
    mark_interrupted,
    open_study,
    prepare_data,
    run_worker,
    validate,
)


def run_search(settings: Settings) -> dict[str, Any]:
    """Run (or resume) the search in ``settings.out``, then write every output; returns nas.json."""
    objectives = validate(settings)
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    prepare_data(settings)  # bad data is exit 2 before any worker starts
    study = open_study(settings, objectives)
    check_same_search(study, settings)
    mark_interrupted(study, settings)
    start = time.time()
    deadline = start + 60 * settings.minutes if settings.minutes else None
    already = counted(study)
    log(settings, f"{already} of {settings.trials} trials already in {settings.storage_url()}")
    if settings.workers == 1:
        run_worker(settings, 0, deadline)
    else:
        # K equal processes (spawned: a fresh interpreter each, no forked torch state); this one
        # only waits, so no worker gets a head start on the others.
        context = multiprocessing.get_context("spawn")
        processes = [
            context.Process(target=_worker_entry, args=(settings, index, deadline))
            for index in range(settings.workers)
        ]
        for p in processes:
            p.start()
        try:
            for p in processes:
                p.join()
        except KeyboardInterrupt:
            for p in processes:
                p.join(timeout=30)
            raise

    return finish(settings, objectives, search_seconds=time.time() - start)

"""The data preparation task: read the source, split it, write the prepared dataset."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from integrity.checks import seal_prepared, verify_tracked
from tunedag.config import Config
from tunedag.data import SPLIT, file_md5, load_prepared, load_source, prepare, save_prepared


@task(cache_policy=NO_CACHE)
def verify_source(cfg: Config) -> str:
    """Refuse a DVC-tracked `data.path` whose bytes differ from DVC's record; return the verdict."""
    return verify_tracked(cfg.data.path, cfg)


@task(cache_policy=NO_CACHE)
def prepare_dataset(cfg: Config) -> dict:
    """Write `paths.prepared`, sealed with its content's MD5, and return a summary (rows per split, task, data version)."""
    frame, target = load_source(cfg.data, cfg.seed)
    source_name = str(cfg.data.path) if cfg.data.source == "file" else f"{cfg.data.source}:{cfg.data.name or cfg.data.task}"
    prep = prepare(frame, target, cfg.data, cfg.seed, source_name)
    extra = {"source": source_name}
    if cfg.data.source == "file":
        extra["raw_md5"] = file_md5(cfg.data.path)
    save_prepared(prep, cfg.paths.prepared, extra)
    seal_prepared(cfg.paths.prepared)  # its content's MD5, in its own metadata: later stages refuse a changed file
    version = file_md5(cfg.paths.prepared)
    load_prepared(cfg.paths.prepared, version)  # writes the Arrow cache that trial workers map, here, not in the first trial
    counts = prep.frame[SPLIT].value_counts().to_dict()
    return {"task": prep.task, "rows": counts, "data_version": version, **extra}

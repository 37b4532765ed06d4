"""The label lake: one Parquet file per asset per video partition, on local disk or S3.

Layout: <root>/<asset>/<partition>.parquet (unpartitioned assets: <root>/<asset>/all.parquet), plus
side files (thumbnails, overlays, the video registry) under the same root. Local writes go to a temp file in
the target folder and are renamed into place (atomic on POSIX); S3 PUTs are atomic by the protocol. Readers
never see half-written files.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import polars as pl
from dagster import ConfigurableIOManager, ConfigurableResource, DagsterEventType, InputContext, OutputContext
from pydantic import PrivateAttr

from fm_resources.settings import fm_home, s3_endpoint_url, s3_region


@functools.cache
def file_mode() -> int:
    """The mode a plain open() would give a new file: 0666 less this process's umask (0644 with the usual 022)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    return parsed.netloc, parsed.path.lstrip("/")


def not_found(exc: Exception) -> bool:
    """An S3 ClientError that says the object is not there (not an outage or a refusal)."""
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


def _safe_key(key: str) -> str:
    parts = [p for p in key.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        raise ValueError(f"unsafe lake key: {key!r}")
    return "/".join(parts)


class Lake(ConfigurableResource):
    """Byte, JSON and Parquet storage under one root (a folder or s3://bucket/prefix)."""

    root: str
    s3_endpoint_url: str | None = None
    s3_region: str | None = None

    _client: Any = PrivateAttr(default=None)

    # -- plumbing ---------------------------------------------------------------------------------
    @property
    def remote(self) -> bool:
        return is_s3(self.root)

    def _s3(self):
        if self._client is None:
            from fm_resources.s3 import s3_client  # retries through outages (FM_S3_RETRY_S)

            self._client = s3_client(self.s3_endpoint_url or s3_endpoint_url(), self.s3_region or s3_region())
        return self._client

    def _bucket_key(self, key: str) -> tuple[str, str]:
        bucket, prefix = split_s3(self.root)
        return bucket, "/".join(p for p in (prefix.rstrip("/"), _safe_key(key)) if p)

    def local_path(self, key: str) -> Path:
        if self.remote:
            raise ValueError("local_path is only defined for a local lake")
        return Path(self.root) / _safe_key(key)

    def uri(self, key: str) -> str:
        if self.remote:
            return f"{self.root.rstrip('/')}/{_safe_key(key)}"
        return str(self.local_path(key))

    # -- bytes --------------------------------------------------------------------------------------
    def write_bytes(self, key: str, data: bytes) -> str:
        if self.remote:
            bucket, k = self._bucket_key(key)
            self._s3().put_object(Bucket=bucket, Key=k, Body=data)
            return self.uri(key)

        def fill(fh) -> None:
            fh.write(data)

        return self._replace(key, fill)

    def _replace(self, key: str, fill) -> str:
        """The local file at `key` made atomically: `fill(fh)` writes a temporary file beside it (binary, open),
        which is given the usual mode, synced and renamed over it; a failure leaves the old file as it was."""
        path = self.local_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fill(fh)
                fh.flush()
                os.fchmod(fh.fileno(), file_mode())  # mkstemp makes 0600: give the file the usual mode
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return str(path)

    def read_bytes(self, key: str) -> bytes:
        if self.remote:
            bucket, k = self._bucket_key(key)
            return self._s3().get_bytes(Bucket=bucket, Key=k)
        return self.local_path(key).read_bytes()

    def exists(self, key: str) -> bool:
        if self.remote:
            bucket, k = self._bucket_key(key)
            try:
                self._s3().head_object(Bucket=bucket, Key=k)
                return True
            except self._s3().exceptions.ClientError as exc:
                if not_found(exc):
                    return False
                raise
        return self.local_path(key).exists()

    def delete(self, key: str) -> None:
        if self.remote:
            bucket, k = self._bucket_key(key)
            self._s3().delete_object(Bucket=bucket, Key=k)
        else:
            self.local_path(key).unlink(missing_ok=True)

    def list(self, prefix: str) -> list[str]:
        """Keys (relative to the root) of the files below prefix, sorted; temp files excluded."""
        prefix = _safe_key(prefix)
        if self.remote:
            bucket, p = self._bucket_key(prefix)
            base = p[: len(p) - len(prefix)]
            keys: list[str] = []
            for page in self._s3().pages(Bucket=bucket, Prefix=p + "/"):
                keys += [o["Key"][len(base):] for o in page.get("Contents", [])]
            return sorted(keys)
        folder = self.local_path(prefix)
        if not folder.is_dir():
            return []
        root = Path(self.root)
        return sorted(
            str(f.relative_to(root)) for f in folder.rglob("*") if f.is_file() and not f.name.startswith(".")
        )

    def has_files(self, prefix: str) -> bool:
        """Whether any file lies below prefix (stops at the first one: cheap on a lake of many files)."""
        prefix = _safe_key(prefix)
        if self.remote:
            bucket, p = self._bucket_key(prefix)
            return bool(self._s3().list_objects_v2(Bucket=bucket, Prefix=p + "/", MaxKeys=1).get("KeyCount"))
        def any_file(folder: str) -> bool:  # scandir stops at the first file: no listing of a 10,000-file folder
            with os.scandir(folder) as entries:
                for e in entries:
                    if not e.name.startswith(".") and (e.is_file() or (e.is_dir() and any_file(e.path))):
                        return True
            return False

        folder = self.local_path(prefix)
        return folder.is_dir() and any_file(str(folder))

    def stamps(self, prefix: str, suffix: str = ".parquet") -> dict[str, str]:
        """The files directly in folder `prefix` ending with `suffix`, each with a stamp that changes whenever
        the file is rewritten: size and mtime on disk, the ETag on S3 (what lake compaction compares)."""
        prefix = _safe_key(prefix)
        if self.remote:
            bucket, p = self._bucket_key(prefix)
            base = p[: len(p) - len(prefix)]
            out = {}
            for page in self._s3().pages(Bucket=bucket, Prefix=p + "/", Delimiter="/"):
                out.update({o["Key"][len(base):]: o["ETag"] for o in page.get("Contents", []) if o["Key"].endswith(suffix)})
            return out
        folder = self.local_path(prefix)
        if not folder.is_dir():
            return {}
        out = {}
        with os.scandir(folder) as entries:
            for e in entries:
                if e.name.endswith(suffix) and not e.name.startswith(".") and e.is_file():
                    st = e.stat()
                    out[f"{prefix}/{e.name}"] = f"{st.st_size}:{st.st_mtime_ns}"
        return out

    # -- typed helpers ------------------------------------------------------------------------------
    def write_json(self, key: str, obj: Any) -> str:
        return self.write_bytes(key, json.dumps(obj, indent=1, sort_keys=True, default=str).encode())

    def read_json(self, key: str) -> Any:
        return json.loads(self.read_bytes(key))

    def write_parquet(self, key: str, df: pl.DataFrame | pl.LazyFrame) -> str:
        """A table as Parquet at `key`, atomically. A LazyFrame is streamed (polars' sink): a table spilled to files
        as it was made (a long video's detections) is written without being read into memory whole."""
        if isinstance(df, pl.LazyFrame):
            if not self.remote:
                return self._replace(key, lambda fh: df.sink_parquet(fh, compression="zstd", statistics=True))
            with tempfile.TemporaryDirectory(prefix="fm-sink-") as tmp:
                path = Path(tmp) / "table.parquet"
                df.sink_parquet(path, compression="zstd", statistics=True)
                bucket, k = self._bucket_key(key)
                self._s3().upload_file(str(path), bucket, k)
            return self.uri(key)
        buf = io.BytesIO()
        df.write_parquet(buf, compression="zstd", statistics=True)
        return self.write_bytes(key, buf.getvalue())

    def read_parquet(self, key: str, columns: Iterable[str] | None = None) -> pl.DataFrame:
        """The table at `key`; with `columns`, only those of them the file has (a table written before a column
        existed lacks it), in the file's order."""
        source: Any = io.BytesIO(self.read_bytes(key)) if self.remote else self.local_path(key)
        if columns is None:
            return pl.read_parquet(source)
        wanted = set(columns)
        present = [c for c in pl.read_parquet_schema(source) if c in wanted]
        if isinstance(source, io.BytesIO):
            source.seek(0)
        return pl.read_parquet(source, columns=present)

    def mirror(self, prefixes: list[str], dest: Path | None = None, keys: list[str] = ()) -> Path:
        """A local folder with the same layout (the root itself when local). For an S3 lake, copies the
        files below `prefixes`, and the single files `keys` (e.g. one video's files for a per-partition check,
        without listing the whole table), that are new or changed (by ETag) into FM_HOME/cache/lake-mirror,
        so DuckDB can read them without network extensions; local copies of files gone upstream are removed."""
        if not self.remote:
            return Path(self.root)
        dest = dest or fm_home() / "cache" / "lake-mirror"
        bucket, root_prefix = split_s3(self.root)
        root_prefix = root_prefix.rstrip("/") + "/" if root_prefix else ""
        stamps_path = dest / ".etags.json"
        stamps = json.loads(stamps_path.read_text()) if stamps_path.exists() else {}
        for prefix in prefixes:
            seen = set()
            for page in self._s3().pages(Bucket=bucket, Prefix=root_prefix + _safe_key(prefix) + "/"):
                for obj in page.get("Contents", []):
                    rel = obj["Key"][len(root_prefix):]
                    seen.add(rel)
                    target = dest / _safe_key(rel)
                    if stamps.get(rel) == obj["ETag"] and target.exists():
                        continue
                    data = self._s3().get_bytes(Bucket=bucket, Key=obj["Key"])
                    Lake(root=str(dest)).write_bytes(rel, data)
                    stamps[rel] = obj["ETag"]
            folder = dest / _safe_key(prefix)
            if folder.is_dir():  # drop files deleted upstream
                for f in folder.rglob("*"):
                    rel = str(f.relative_to(dest))
                    # not another process's file being written (.<name>.<random>.tmp, renamed when complete)
                    if f.is_file() and rel not in seen and not f.name.startswith("."):
                        f.unlink()
                        stamps.pop(rel, None)
        for rel in map(_safe_key, keys):
            target = dest / rel
            try:
                etag = self._s3().head_object(Bucket=bucket, Key=root_prefix + rel)["ETag"]
            except self._s3().exceptions.ClientError as exc:
                if not not_found(exc):
                    raise
                target.unlink(missing_ok=True)
                stamps.pop(rel, None)
                continue
            if stamps.get(rel) != etag or not target.exists():
                data = self._s3().get_bytes(Bucket=bucket, Key=root_prefix + rel)
                Lake(root=str(dest)).write_bytes(rel, data)
                stamps[rel] = etag
        Lake(root=str(dest)).write_bytes(".etags.json", json.dumps(stamps).encode())  # atomic: runs share it
        return dest


STAGE_RUNS = {"asset": pl.String, "video_id": pl.String, "run_id": pl.String,
              "finished_at": pl.Datetime("us", "UTC"), "seconds": pl.Float64, "rows": pl.Int64}


def config_version(config: Any) -> str:
    """16 hex digits of the sha256 of a step's config (JSON, keys sorted): what `fm run` compares to tell a changed
    stage config."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def asset_config(config: Any, asset: str, outputs: Iterable[str]) -> Any:
    """The part of a step's config that decides one of its assets: a step that makes several (`outputs`) keeps an
    asset's own knobs under that asset's name (the `ingest` step: `detections`); the rest decides the others. So a
    new detector setting reruns `detections`, not the clips."""
    if not isinstance(config, dict):
        return config
    if isinstance(config.get(asset), dict):
        return config[asset]
    return {k: v for k, v in config.items() if k not in set(outputs)}


def table_key(asset: str, partition: str | None) -> str:
    return f"{asset}/{partition}.parquet" if partition else f"{asset}/all.parquet"


def n_rows(obj: pl.DataFrame | pl.LazyFrame) -> int:
    """Rows of a table, a LazyFrame's counted by a scan (not collected whole)."""
    return len(obj) if isinstance(obj, pl.DataFrame) else int(obj.select(pl.len()).collect().item())


def forget_captured_output(context: OutputContext, obj: Any) -> None:
    """Drop the copy of a stored output that Dagster's `execute_in_process` keeps for its result (`fm run` runs each
    video that way, in its own process, and never reads the outputs back from the result): without this a run holds
    every stage's table of its video until it ends, which on a long video is most of what grows with its length
    (the detections, tracks, trajectories ... of an hour of video). Only that capture is touched (not the value
    itself, which downstream steps read from the lake), and nothing happens where it does not exist (a run on
    another executor or process, a direct IO manager call)."""
    try:
        from dagster._core.execution.plan.outputs import StepOutputHandle

        captured = context.step_context.output_capture
        handle = StepOutputHandle(context.step_key, context.name)
    except Exception:  # no step context, or Dagster's internals moved: keep the capture
        return
    if captured is not None and captured.get(handle) is obj:
        del captured[handle]


class LakeIOManager(ConfigurableIOManager):
    """Stores each asset's polars DataFrame as Parquet in the lake, one file per partition. A LazyFrame (a table
    spilled to files as a step made it) is streamed to the lake, never collected whole."""

    lake: Lake

    def handle_output(self, context: OutputContext, obj: pl.DataFrame | pl.LazyFrame) -> None:
        if obj is None:
            return
        if not isinstance(obj, pl.DataFrame | pl.LazyFrame):
            raise TypeError(f"{context.asset_key.to_user_string()}: expected a polars DataFrame, got {type(obj)}")
        self._store(context, obj)
        forget_captured_output(context, obj)

    def _store(self, context: OutputContext, obj: pl.DataFrame | pl.LazyFrame) -> None:
        asset = context.asset_key.path[-1]
        try:  # the step's resolved config (defaults filled in): `fm run` reruns the stage when it changes
            outputs = [o.name for o in context.step_context.op_def.output_defs]
            version = {"config_version": config_version(asset_config(context.step_context.op_config, asset, outputs))}
        except Exception:  # no step context (a direct IO manager call in a test)
            version = {}
        rows = n_rows(obj)
        if not context.has_asset_partitions:
            uri = self.lake.write_parquet(table_key(asset, None), obj)
            context.add_output_metadata({"rows": rows, "path": uri, **version})
            return
        keys = context.asset_partition_keys
        has_ids = "video_id" in obj.collect_schema().names()
        # each partition's rows: one video's are the table's; a batch's are counted by video_id in one pass
        counts = ({keys[0]: rows} if len(keys) == 1 else
                  dict(obj.lazy().group_by("video_id").len().collect().iter_rows()) if has_ids else {})
        self._record_stage(context, asset, keys, counts)
        if len(keys) == 1:
            uri = self.lake.write_parquet(table_key(asset, keys[0]), obj)
            context.add_output_metadata({"rows": rows, "path": uri, **version})
            return
        # A batch of videos in one run (a multi-run backfill): one file per video, empty ones too, so every
        # partition of the batch is materialized with exactly its own rows.
        if not has_ids:
            raise ValueError(f"{asset}: a batch of partitions needs a video_id column to split the rows by")
        stray = set(counts) - set(keys)
        if stray:
            raise ValueError(f"{asset}: rows for videos outside this run's partitions: {sorted(stray)[:5]}")
        if isinstance(obj, pl.DataFrame):  # in memory: split in one pass
            by_video = obj.partition_by("video_id", as_dict=True) if rows else {}
            for key in keys:
                self.lake.write_parquet(table_key(asset, key), by_video.get((key,), obj.clear()))
        else:  # streamed: one scan per video, never collected whole
            for key in keys:
                self.lake.write_parquet(table_key(asset, key), obj.filter(pl.col("video_id") == key))
        context.add_output_metadata({"rows": rows, "partitions": len(keys), **version})

    def _record_stage(self, context: OutputContext, asset: str, keys: list[str], counts: dict[str, int]) -> None:
        """stage_runs/<video>__<asset>.parquet: when the step ran, its wall seconds (shared equally by the videos
        of a batch) and each video's rows (`counts`), for the `seconds per stage` report."""
        now = datetime.now(UTC)
        seconds = None
        try:
            records = context.step_context.instance.get_records_for_run(
                context.run_id, of_type=DagsterEventType.STEP_START).records
            starts = [r.event_log_entry.timestamp for r in records if r.event_log_entry.step_key == context.step_key]
            if starts:
                seconds = max(0.0, now.timestamp() - max(starts)) / len(keys)
        except Exception:  # no step context (e.g. a direct IO manager call in a test)
            seconds = None
        for key in keys:
            row = {"asset": asset, "video_id": key, "run_id": context.run_id, "finished_at": now,
                   "seconds": seconds, "rows": int(counts.get(key, 0))}
            self.lake.write_parquet(f"stage_runs/{key}__{asset}.parquet", pl.DataFrame([row], schema=STAGE_RUNS))

    def load_input(self, context: InputContext) -> pl.DataFrame:
        """The upstream table; an input whose definition metadata names `columns` (as Dagster's database IO managers
        read it: ``AssetIn(metadata={"columns": [...]})``) gets only those (e.g. `tracks` reads `detections`
        without its masks)."""
        asset = context.asset_key.path[-1]
        columns = (context.definition_metadata or {}).get("columns")
        if context.has_asset_partitions:
            keys = context.asset_partition_keys
            frames = [
                self.lake.read_parquet(table_key(asset, k), columns)
                for k in keys
                if self.lake.exists(table_key(asset, k))
            ]
            if len(keys) == 1 and not frames:
                raise FileNotFoundError(f"{asset} has not been materialized for partition {keys[0]}")
            return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
        return self.lake.read_parquet(table_key(asset, None), columns)

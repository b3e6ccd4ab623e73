"""Reading a located dataset with pyarrow, one column at a time (memory stays at a few columns).

Parquet is read column by column through ``pyarrow.dataset`` (local or S3, one file or many).
CSV cannot be read by column cheaply, so a CSV dataset is parsed once and kept in memory.
Every failure becomes a :class:`DatasetReadError` with a kind (:func:`classify`) and a message
naming the dataset's role and URI.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from gates.data_check.models import DatasetLocator
from gates.data_check.models import DatasetReadError as DatasetReadError  # where the readers' users expect it


@dataclass(frozen=True)
class FooterFacts:
    """What the Parquet footers alone say of one column: rows, nulls and the largest value."""

    type: pa.DataType
    rows: int
    nulls: int
    maximum: Any  # as ``pc.max(column).as_py()`` would give it; None when every value is null


# pyarrow raises these (and no OSError) when the bytes it was given are not what it expected:
# not Parquet at all (no magic bytes), a truncated file, a CSV it cannot parse, a type it cannot convert.
_CONTENT_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, pa.ArrowSerializationError,
                   pa.ArrowCapacityError, pa.ArrowIndexError, pa.ArrowKeyError)


def classify(exc: BaseException, filesystem: Any = None, paths: Sequence[str] = ()) -> str:
    """The kind of a read failure — not_found, unreadable or unreachable — from the exception's type.

    Never from its text: pyarrow's "Parquet magic bytes not found in footer" is a file that exists
    and is not Parquet. A missing local file or S3 key is a ``FileNotFoundError`` (errno ENOENT;
    pyarrow maps S3's NoSuchKey / NoSuchBucket to it). A bare ``OSError`` is ambiguous: pyarrow
    raises it for a corrupt file (bad compression, an undecodable footer) and for a store it cannot
    reach or may not read, so the filesystem is asked (:func:`_probe`) whether the files are there.
    """
    if isinstance(exc, FileNotFoundError) or (isinstance(exc, OSError) and exc.errno in (errno.ENOENT, errno.ENOTDIR)):
        return "not_found"
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return "unreachable"
    if isinstance(exc, _CONTENT_ERRORS):
        return "unreadable"
    if isinstance(exc, OSError) and filesystem is not None and paths:
        return _probe(filesystem, paths)
    # Anything else (out of memory, cancelled, a bug) says nothing about the data: undecided, as an
    # unreachable store is (the check is an error, not a failure).
    return "unreachable"


def _probe(filesystem: Any, paths: Sequence[str]) -> str:
    """After an ambiguous OSError: unreachable if the store does not answer, not_found if a file has
    gone (deleted since it was located), else unreadable (the file is there, so its content failed).

    Every file is looked up (one request each on S3): only on this failure path, and the failing
    file is not named by the exception except in its text.
    """
    import pyarrow.fs as pafs

    try:
        infos = filesystem.get_file_info(list(paths))
    except Exception:  # noqa: BLE001 — the store itself failed to answer: that is the finding
        return "unreachable"
    if any(info.type == pafs.FileType.NotFound for info in infos):
        return "not_found"
    return "unreadable"


class DatasetReader:
    """A dataset opened for reading: schema and row count up front, columns on demand."""

    def __init__(self, locator: DatasetLocator) -> None:
        self.locator = locator
        self._csv_table: pa.Table | None = None
        self._filesystem: Any = None  # kept to classify later read failures (see classify)
        if locator.error:
            raise DatasetReadError(locator.error_kind or "unreachable", locator.error)
        if not locator.files:
            raise DatasetReadError("not_found", f"{locator.role} ({locator.uri}): no files")
        try:
            filesystem = self._filesystem = locator.filesystem.to_pyarrow()
            if locator.format == "csv":
                import pyarrow.csv as pacsv

                # An empty CSV field is a null, for strings too (as it is for numbers).
                fmt_csv = pads.CsvFileFormat(convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
                self._dataset = pads.dataset(locator.files, filesystem=filesystem, format=fmt_csv)
                self._csv_table = self._dataset.to_table()
                self.schema = self._csv_table.schema
                self.num_rows = self._csv_table.num_rows
            else:
                self._dataset = pads.dataset(locator.files, filesystem=filesystem, format="parquet")
                strings = [f.name for f in self._dataset.schema
                           if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
                self.schema = self._dataset.schema  # the files' own types (reported and checked)
                if strings:  # strings read as dictionaries: categories are counted on small integer codes
                    fmt = pads.ParquetFileFormat(read_options=pads.ParquetReadOptions(dictionary_columns=strings))
                    self._dataset = pads.dataset(locator.files, filesystem=filesystem, format=fmt)
                self.num_rows = sum(f.metadata.num_rows for f in self._fragments)
        except DatasetReadError:
            raise
        except Exception as exc:  # noqa: BLE001 — any reader failure is a finding about the data
            kind = classify(exc, self._filesystem, locator.files)
            raise DatasetReadError(kind, f"{locator.role} ({locator.uri}): {kind}: {type(exc).__name__}: {exc}"
                                   ) from exc

    def _error(self, exc: Exception, columns: list[str]) -> DatasetReadError:
        """A failure reading columns after the dataset was opened, classified, naming role, URI and columns."""
        kind = classify(exc, self._filesystem, self.locator.files)
        shown = ", ".join(repr(c) for c in columns)
        where = f"{self.locator.role} ({self.locator.uri}), column{'s' if len(columns) > 1 else ''} {shown}"
        return DatasetReadError(kind, f"{where}: {kind}: {type(exc).__name__}: {exc}")

    @cached_property
    def _fragments(self) -> list[Any]:
        frags = list(self._dataset.get_fragments())
        for frag in frags:
            frag.ensure_complete_metadata()
        return frags

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)

    def column(self, name: str, threads: bool = True) -> pa.ChunkedArray:
        """One column as Arrow (read now for Parquet; ``threads=False`` when the caller runs columns in parallel)."""
        if self._csv_table is not None:
            return self._csv_table.column(name)
        try:
            return self._dataset.to_table(columns=[name], use_threads=threads).column(0)
        except Exception as exc:  # noqa: BLE001
            raise self._error(exc, [name]) from exc

    def footer_facts(self, name: str) -> FooterFacts | None:
        """Row count, null count and maximum of column ``name`` from the Parquet footers, without reading it.

        None when any row group lacks the statistics, a file stores the column under another type,
        or the dataset is CSV: the caller then reads the column.
        """
        if self._csv_table is not None or name not in self.schema.names:
            return None
        wanted = self.schema.field(name).type
        maxima, nulls, rows = [], 0, 0
        for fragment in self._fragments:
            metadata = fragment.metadata
            arrow_schema = metadata.schema.to_arrow_schema()
            if name not in arrow_schema.names or arrow_schema.field(name).type != wanted:
                return None
            position = metadata.schema.names.index(name) if name in metadata.schema.names else -1
            for group in range(metadata.num_row_groups):
                row_group = metadata.row_group(group)
                if row_group.num_rows == 0:
                    continue
                column = row_group.column(position) if position >= 0 else None
                stats = column.statistics if column is not None and column.path_in_schema == name else None
                if stats is None or not stats.has_null_count:
                    return None
                nulls += stats.null_count
                rows += row_group.num_rows
                if stats.null_count < row_group.num_rows:
                    if not stats.has_min_max:
                        return None
                    maxima.append(stats.max)
        try:
            maximum = pc.max(pa.array(maxima, type=wanted)).as_py() if maxima else None
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # a statistic pyarrow cannot turn back into the type
            return None
        return FooterFacts(type=wanted, rows=rows, nulls=nulls, maximum=maximum)

    def table(self, names: list[str]) -> pa.Table:
        """Several columns as one Arrow table."""
        if self._csv_table is not None:
            return self._csv_table.select(names)
        try:
            return self._dataset.to_table(columns=names, use_threads=True)
        except Exception as exc:  # noqa: BLE001
            raise self._error(exc, names) from exc

    def take(self, names: list[str], positions: np.ndarray) -> pa.Table:
        """The rows at ``positions`` (sorted, unique) of some columns, without holding whole columns."""
        indices = pa.array(np.asarray(positions, dtype=np.int64))
        if self._csv_table is not None:
            return self._csv_table.select(names).take(indices)
        try:
            return self._dataset.take(indices, columns=names)
        except Exception as exc:  # noqa: BLE001
            raise self._error(exc, names) from exc

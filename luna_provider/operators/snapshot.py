"""Descriptors a task works on, frozen into the object store so subtasks can read row ranges."""

from __future__ import annotations

from typing import TYPE_CHECKING

from luna_provider.errors import BAD_INPUT, DESCRIPTOR_VERSION_UNKNOWN

if TYPE_CHECKING:
    from collections.abc import Iterator

    import numpy as np

    from luna_provider.compute.descriptors import DescriptorVersion
    from luna_provider.operators.base import TaskRun


def descriptor_version_of(run: TaskRun) -> DescriptorVersion:
    """Return the descriptor version the task's content asks for (or the default one)."""
    from luna_provider.compute.descriptors import UnknownDescriptorVersion, get_descriptor_version

    requested = (run.task.content.get("descriptor") or {}).get("descriptor_version")
    version = int(requested or run.settings.default_descriptor_version)
    try:
        return get_descriptor_version(version)
    except UnknownDescriptorVersion:
        raise DESCRIPTOR_VERSION_UNKNOWN(version) from None


class DescriptorSnapshot:
    """The descriptors a task works on, frozen into the object store as one float32 matrix file.

    Subtasks read row ranges of it, so none of them needs the whole set in memory and all of them
    see the same objects in the same order.
    """

    def __init__(self, run: TaskRun, version: DescriptorVersion, name: str = "objects") -> None:
        self.run = run
        self.version = version
        self.matrix_key = f"{run.work_prefix}/{name}.f32"
        self.ids_key = f"{run.work_prefix}/{name}.ids"
        self.tracks_key = f"{run.work_prefix}/{name}.tracks"

    def write(self, filters: dict, *, limit: int | None) -> int:
        """Select the objects and write their ids, track ids and descriptors; return their count."""
        from luna_provider.store.objects import descriptor_select, stream_rows

        run = self.run
        descriptor_type = (run.task.content.get("descriptor") or {}).get("type", "face")
        query = descriptor_select(
            run.task.account_id,
            filters,
            descriptor_version=self.version.version,
            descriptor_type=descriptor_type,
            default_upper=run.task.create_time,
            limit=limit,
        )
        expected = self.version.length * 4
        count = 0
        with (
            run.store.open(self.matrix_key, "wb") as matrix,
            run.store.open(self.ids_key, "wb") as ids,
            run.store.open(self.tracks_key, "wb") as tracks,
        ):
            for rows in stream_rows(run.engine, query, run.settings.match_block_size):
                for object_id, track_id, blob in rows:
                    if len(blob) != expected:
                        run.add_error(
                            BAD_INPUT(
                                f"descriptor of {object_id} has {len(blob)} bytes, "
                                f"version {self.version.version} needs {expected}"
                            ),
                            object_id=str(object_id),
                        )
                        continue
                    matrix.write(blob)
                    ids.write(f"{object_id}\n".encode())
                    tracks.write(f"{track_id or ''}\n".encode())
                    count += 1
        return count

    def read_rows(self, start: int, stop: int) -> np.ndarray:
        """Read descriptors ``start .. stop`` as an ``(n, length)`` matrix."""
        import numpy as np

        width = self.version.length * 4
        with self.run.store.open(self.matrix_key, "rb") as matrix:
            matrix.seek(start * width)
            data = matrix.read((stop - start) * width)
        return np.frombuffer(data, dtype="<f4").reshape(-1, self.version.length)

    def blocks(self, start: int, stop: int, size: int) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(offset, block)`` pairs covering rows ``start .. stop``."""
        for offset in range(start, stop, size):
            yield offset, self.read_rows(offset, min(offset + size, stop))

    def read_lines(self, key: str) -> list[str]:
        """Read a text file of the snapshot (ids or track ids), one entry per row."""
        with self.run.store.open(key, "rb") as stream:
            return [line.decode().rstrip("\n") for line in stream]

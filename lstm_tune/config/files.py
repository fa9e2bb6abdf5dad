"""Reading a study or exported-config YAML file: the bytes (one-line errors for a missing,
binary or non-UTF-8 file), PyYAML's safe loader refusing duplicate keys, then validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from lstm_tune.config.spec import StudySpec, parse_spec, with_data
from lstm_tune.errors import ConfigError, UserFile

__all__ = ["STUDY_FILE", "load_spec"]


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (YAML says keys are
    unique; PyYAML would keep the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if isinstance(key, str | int | float | bool) and key in seen:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} appears twice in one mapping",
                    mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


STUDY_FILE = UserFile(
    ConfigError,
    missing="no such file; give the path of a study YAML file",
    directory="is a directory; give the path of a study YAML file",
    unreadable="cannot read",
)


def load_spec(path: str | Path) -> StudySpec:
    """Read and validate a study or exported-config YAML file."""
    file = str(path)
    data = STUDY_FILE.read(file)
    if b"\x00" in data:
        raise ConfigError(f"{file}: binary file (NUL bytes); expected a YAML text file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 text at byte {exc.start}") from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506  # a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{file}: invalid YAML: {where}{problem}") from None
    spec = parse_spec(raw, file)
    data_path = getattr(spec.data, "path", None)
    if data_path is not None and not Path(data_path).is_absolute():
        # A relative data path in a study file means relative to that file, not to the cwd.
        resolved = str((Path(path).parent / data_path).resolve())
        spec = with_data(spec, path=resolved)
    board = spec.training.tensorboard
    if board is not None and not Path(board).is_absolute():  # the same rule
        resolved = str((Path(path).parent / board).resolve())
        training = spec.training.model_copy(update={"tensorboard": resolved})
        spec = spec.model_copy(update={"training": training})
    return spec

"""Reading JSON-lines files with errors that name the file and line."""
from __future__ import annotations

import json
import os
from typing import Iterator, Tuple, Union


def parse_jsonl_line(line: str, where: str) -> dict:
    """One line of a JSON-lines file as a dict.

    Args:
        line (str): The line.
        where (str): ``'<file>, line <n>'``, put in front of the error.

    Raises:
        ValueError: Not valid JSON, or not a JSON object.
    """
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f'{where}: not valid JSON ({err})') from err
    if not isinstance(record, dict):
        raise ValueError(f'{where}: expected a JSON object')
    return record


def iter_jsonl_lines(path: Union[str, os.PathLike]) -> Iterator[Tuple[int, str, str]]:
    """``(line number, where, line)`` of every non-blank line (numbers from 1)."""
    with open(path, encoding='utf-8') as file:
        for line_no, line in enumerate(file, start=1):
            if line.strip():
                yield line_no, f'{path}, line {line_no}', line


def read_jsonl(path: Union[str, os.PathLike]) -> Iterator[Tuple[int, str, dict]]:
    """``(line number, where, record)`` of every non-blank line; see :func:`parse_jsonl_line`."""
    for line_no, where, line in iter_jsonl_lines(path):
        yield line_no, where, parse_jsonl_line(line, where)

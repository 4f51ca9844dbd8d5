"""Reading and writing files a user hands the project: bounded, and never through a link.

A run directory may come from anyone (copied from a cluster, attached to a bug report,
downloaded with a paper), and a config or program file may be anything a path can name
(``/dev/zero``, a FIFO, a name longer than the system allows). Every file the project
reads from such a place goes through :func:`read_text`, and every file it writes into a
run directory through :func:`replace` or :func:`open_nofollow`:

- a read is bounded before it is made: a file larger than its limit, or one that is not
  a regular file, is refused without reading it whole;
- in a run directory, a path that is a symbolic link is refused (``O_NOFOLLOW``), for
  reading and for writing: nothing is written outside the directory through a link
  planted in it (``lock``, ``checkpoint.json.tmp``, ``history.torn``, ...);
- a write is atomic: a temporary file made fresh (``O_EXCL``, so a planted one is
  removed, never followed), synced, then renamed over the target; on a full disk the old
  file stays and no temporary is left;
- every problem is one :class:`FileError` naming the file and what is wrong, never a
  traceback (``File name too long`` included).

>>> import os, tempfile
>>> d = tempfile.mkdtemp()
>>> replace(os.path.join(d, "a.json"), "{}")
>>> read_text(os.path.join(d, "a.json"), limit=10)
'{}'
>>> os.symlink("/etc/hostname", os.path.join(d, "b.json"))
>>> read_text(os.path.join(d, "b.json"), limit=10, links=False)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
search.files.FileError: .../b.json: cannot read it: is a symbolic link; ...
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from pathlib import Path

#: O_NOFOLLOW where the system has it (not Windows, where links need privileges).
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
#: Held while :func:`replace` writes: a command that ends its process at once on Ctrl-C
#: takes it first, so no file is left half-renamed (``run_search.py``'s ``_stoppable``).
WRITING = threading.RLock()
#: O_NONBLOCK where the system has it: opening a FIFO to read it never waits for a writer.
NONBLOCK = getattr(os, "O_NONBLOCK", 0)

#: Size limits, in bytes, of what the project reads (a program text is limited to
#: 1,000,000 characters by the parser: at most 4 bytes each in UTF-8).
PROGRAM_LIMIT = 4_000_000
CONFIG_LIMIT = 1_000_000
#: One history line (a record holds a program's source and its per-task results).
LINE_LIMIT = 8_000_000
#: A run directory's JSON files (checkpoint with its cache index, funnel, baselines).
JSON_LIMIT = 256_000_000


class FileError(ValueError):
    """A file that cannot be used as asked; the message names it and the problem."""

    def __init__(self, message: str, *, disk: bool = False) -> None:
        super().__init__(message)
        #: The machine's fault (a full disk, a lost mount), not the input's.
        self.disk = disk


def _named(path: str | os.PathLike) -> None:
    """An ``OSError`` for a name no system call takes (Python raises ValueError)."""
    if "\0" in os.fspath(path):
        raise OSError(errno.EINVAL, "the name holds a NUL character", os.fspath(path))


def shown(path: str | os.PathLike) -> str:
    r"""``path`` as a message quotes it: on one line, every character that is not printable
    escaped (a name may hold a newline, an escape sequence, a NUL).

    >>> shown("runs/a\nb\x1b[2J")
    'runs/a\\nb\\x1b[2J'
    """
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in os.fspath(path))


def describe(e: OSError) -> str:
    """An ``OSError`` as a few words (``is a symbolic link``, ``File name too long``)."""
    if e.errno == errno.ELOOP:
        return "is a symbolic link; a run directory's files must be plain files"
    return e.strerror or type(e).__name__


def input_fault(e: OSError) -> bool:
    """Whether ``e`` is the input's fault (a permission, a link, a name, a file of the wrong
    kind) rather than the machine's (a full disk, a lost mount)."""
    return e.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ELOOP,
                       errno.ENAMETOOLONG, errno.ENOENT, errno.ENOTDIR, errno.EISDIR,
                       errno.EEXIST, errno.EINVAL, errno.ENXIO, errno.ENODEV)


def error(path: str | os.PathLike, e: OSError, doing: str = "") -> FileError:
    """``e`` on ``path`` as one :class:`FileError`; ``disk`` unless it is the input's."""
    if not input_fault(e) and doing:  # the machine's: "cannot write PATH: No space left..."
        return FileError(f"{doing.removesuffix(' it')} {shown(path)}: {describe(e)}", disk=True)
    return FileError(": ".join([shown(path), *([doing] if doing else []), describe(e)]),
                     disk=not input_fault(e))


def exists(path: str | os.PathLike) -> bool:
    """Whether ``path`` names anything (a link too); a name the system cannot take (too
    long, say) is one :class:`FileError`, not a traceback."""
    try:
        _named(path)
        os.lstat(path)
    except FileNotFoundError:
        return False
    except NotADirectoryError:
        return False
    except OSError as e:
        raise error(path, e) from None
    return True


def is_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder (following links: the user named it)."""
    try:
        _named(path)
        return stat.S_ISDIR(os.stat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as e:
        raise error(path, e) from None


def open_nofollow(path: str | os.PathLike, flags: int, mode: int = 0o644) -> int:
    """``os.open`` of a regular file that refuses a symbolic link at ``path`` (an
    ``OSError`` with ``ELOOP``, which :func:`describe` words), and anything else that is no
    regular file (a FIFO would block, a device never end): an ``OSError`` too."""
    _named(path)
    fd = os.open(path, flags | NOFOLLOW | NONBLOCK, mode)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    return fd


def read_bytes(path: str | os.PathLike, limit: int, *, links: bool = True) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them: a larger file, or
    one that is not a regular file (a device, a FIFO, a folder), is refused before it is
    read. ``links=False`` refuses a symbolic link (a run directory's files)."""
    try:
        _named(path)
        fd = os.open(path, os.O_RDONLY | (0 if links else NOFOLLOW) | NONBLOCK)
    except OSError as e:
        raise error(path, e, "cannot read it") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileError(f"{shown(path)}: not a regular file")
        if info.st_size > limit:
            raise FileError(f"{shown(path)}: {info.st_size:,} bytes, more than the {limit:,} "
                            "this file may hold")
        chunks, size = [], 0
        while size <= limit:  # a file still growing is bounded too
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise FileError(f"{shown(path)}: more than the {limit:,} bytes this file may hold")
        return b"".join(chunks)
    except OSError as e:
        raise error(path, e, "cannot read it") from None
    finally:
        os.close(fd)


def read_text(path: str | os.PathLike, limit: int, *, links: bool = True) -> str:
    """:func:`read_bytes` decoded as UTF-8 (a :class:`FileError` if it is not)."""
    try:
        return read_bytes(path, limit, links=links).decode("utf-8")
    except UnicodeDecodeError:
        raise FileError(f"{shown(path)}: not UTF-8 text") from None


def replace(path: str | os.PathLike, text: str | bytes) -> None:
    """Write ``path`` atomically: a fresh temporary beside it (a link or file planted under
    the temporary's name is removed, never followed), synced, then renamed over ``path``
    (a rename replaces a link at ``path`` itself, not its target). On failure the old
    file stays and no temporary is left."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    data = text.encode("utf-8") if isinstance(text, str) else text
    with WRITING:
        _replace(path, tmp, data)


def _replace(path: Path, tmp: Path, data: bytes) -> None:
    try:
        _named(path)
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as e:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise error(path, e, "cannot write it") from None


__all__ = ["CONFIG_LIMIT", "JSON_LIMIT", "LINE_LIMIT", "PROGRAM_LIMIT", "WRITING", "FileError",
           "describe", "error", "exists", "input_fault", "is_dir", "open_nofollow", "read_bytes",
           "read_text", "replace", "shown"]

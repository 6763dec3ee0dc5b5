"""What the command line writes, written so that no mistake and no Ctrl-C harms the user's data.

Design
------
- An output is never one of the command's inputs: the names are compared as files
  (`os.path.samefile`: the same inode, so `./x.csv`, a symlink to it or a hard link all count).
- A model is written only over nothing or over a model fastmlp wrote; anything else needs
  `--force`. Telling a model file from another file must not load it (loading a pickle runs its
  code), so `is_fastmlp_model_file` reads bytes: a pickle stream (joblib's compressions included)
  or a skops archive that names fastmlp's estimators.
- Every file is written atomically: into a hidden temporary file in the same folder (the same
  file system, so the rename is atomic), flushed to disk, then `os.replace`d over the target.
  Ctrl-C or a crash at any point leaves either the old file or the new one, never half of one.
  The temporary name ends with the target's name, so whatever reads the name to choose a format
  (joblib's compression, skops, numpy's suffixes) chooses the same one.
- `looks_like_pickle` is the check `predict` and `export` make before asking for
  `--trust-pickle`: a file that is no pickle at all is "not a model file", whatever its name.
"""

import bz2
import gzip
import lzma
import os
import tempfile
import zipfile
import zlib

from fastmlp.cli._messages import UsageError

#: The module fastmlp's estimators are pickled under (joblib and skops write its name).
_ESTIMATORS_MODULE = b"fastmlp._multilayer_perceptron"

# The first bytes of the files joblib writes: a pickle (protocol 2 and later start with PROTO),
# or one of its compressions, which wrap the same stream.
_PICKLE = b"\x80"
_COMPRESSED = {b"\x1f\x8b": gzip.GzipFile, b"BZh": bz2.BZ2File, b"\xfd7zXZ": lzma.LZMAFile,
               b"\x5d\x00\x00": lzma.LZMAFile}
_ZLIB = (b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda")


def _head(path, size=8):
    with open(path, "rb") as f:
        return f.read(size)


def looks_like_pickle(path):
    """True if `path` starts as a pickle or a joblib-compressed pickle does."""
    head = _head(path)
    return (head.startswith(_PICKLE) or head.startswith(_ZLIB)
            or any(head.startswith(magic) for magic in _COMPRESSED))


def _contains(stream, marker, chunk=1 << 20):
    tail = b""
    while True:
        block = stream.read(chunk)
        if not block:
            return False
        if marker in tail + block:
            return True
        tail = block[-len(marker):]


class _ZlibReader:
    def __init__(self, f):
        self._f, self._inflate = f, zlib.decompressobj()

    def read(self, size):
        block = self._f.read(size)
        return self._inflate.decompress(block) if block else self._inflate.flush()


def is_fastmlp_model_file(path):
    """True if `path` holds a model fastmlp wrote (read as bytes; nothing in it is run)."""
    try:
        if zipfile.is_zipfile(path):  # skops: a zip archive whose schema names the types
            with zipfile.ZipFile(path) as archive:
                return ("schema.json" in archive.namelist()
                        and _ESTIMATORS_MODULE.decode() in archive.read("schema.json").decode())
        if not looks_like_pickle(path):
            return False
        head = _head(path)
        with open(path, "rb") as f:
            if head.startswith(_PICKLE):
                return _contains(f, _ESTIMATORS_MODULE)
            if head.startswith(_ZLIB):
                return _contains(_ZlibReader(f), _ESTIMATORS_MODULE)
            opener = next(o for magic, o in _COMPRESSED.items() if head.startswith(magic))
            with opener(f) as stream:
                return _contains(stream, _ESTIMATORS_MODULE)
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError, zipfile.BadZipFile):
        return False


def check_not_an_input(output, inputs, what="output"):
    """UsageError if `output` is (through any name or link) one of `inputs`."""
    if output is None or not os.path.exists(output):
        return
    for given in inputs:
        if given is not None and os.path.exists(given) and os.path.samefile(output, given):
            same = "" if os.path.abspath(output) == os.path.abspath(given) else f" ({given})"
            raise UsageError(f"{output}: is this command's input{same}; write the {what} to "
                             "another file")


def check_model_destination(path, force):
    """UsageError unless writing a model to `path` replaces nothing but a fastmlp model."""
    if os.path.exists(path) and not force and not is_fastmlp_model_file(path):
        raise UsageError(f"{path}: exists and is not a fastmlp model; choose another name, or "
                         "add --force to replace it")


def _new_file_mode(target):
    if os.path.exists(target):
        return os.stat(target).st_mode & 0o7777  # a replaced file keeps its permissions
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomically(path, write):
    """Call `write(temporary_path)`, then put the file at `path` in one step (see Design).

    A symlink at `path` is followed: the file it points to is replaced, the link kept."""
    target = os.path.realpath(path)
    folder, name = os.path.split(target)
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=".fastmlp-", suffix=f"-{name}")
    os.close(descriptor)
    try:
        write(temporary)
        with open(temporary, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(temporary, _new_file_mode(target))
        os.replace(temporary, target)
    except BaseException:  # Ctrl-C included: the old file stays, the partial one goes
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    try:  # the rename itself, to disk
        directory = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(directory)
    except OSError:
        pass
    finally:
        os.close(directory)

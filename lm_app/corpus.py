"""Walking the corpus, counting words and the vocabulary file (no TensorFlow here).

On disk the vocabulary is ``vocab.txt`` (UTF-8, ``token<TAB>count`` per line, id =
line number, ``<pad>`` = 0 and ``<unk>`` = 1) and ``vocab.json`` beside it with
the settings that made it.  Plain text and JSON, never pickle: loading a pickle
runs arbitrary code.
"""
import codecs
import collections
import glob
import hashlib
import json
import multiprocessing
import multiprocessing.connection
import os
from dataclasses import dataclass, field
from pathlib import Path

from . import text
from .atomic import read_json, write_json, write_text
from .errors import UsageError
from .native import counter_library
from .native.count import NativeCounter

FORMAT_VERSION = 1
_READ_CHUNK = 1 << 22  # bytes per normalisation call: large enough to amortise, small enough to stream
MAX_LINE = 1 << 20  # characters: longer lines are read in pieces cut between words


def find_files(pattern):
    """Files matched by a recursive glob, sorted so every run sees the same order.

    ``pathlib``'s ``**`` does not descend into symlinked folders, so a symlink
    loop in a corpus cannot make the walk hang (``glob.glob`` would).
    """
    if not pattern or not str(pattern).strip():
        raise UsageError("empty corpus pattern")
    parts = Path(os.path.expanduser(str(pattern))).parts
    fixed = next((i for i, part in enumerate(parts) if glob.has_magic(part)), len(parts))
    base, rest = Path(*parts[:fixed]) if fixed else Path("."), parts[fixed:]
    try:
        matches = list(base.glob(str(Path(*rest)))) if rest else [base]
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot search {pattern!r}: {e}") from None
    files = sorted({os.path.normpath(p) for p in matches if p.is_file()})
    if not rest and not base.exists():
        raise UsageError(f"{pattern!r} does not exist")
    if not files:
        if matches:
            raise UsageError(f"corpus pattern {pattern!r} matches only directories, no files")
        raise UsageError(f"no files match the corpus pattern {pattern!r}")
    return files


def mode_mismatch(files, vocab, sample_bytes=1 << 16):
    """Why the corpus looks tokenized otherwise than the vocabulary was built, or None.

    Training tokenizes the corpus as the vocabulary was, so a plain-text corpus
    under a ``--pretokenized`` vocabulary trains on tokens like ``The`` and
    ``end,`` without a word; a Penn-Treebank file under a plain one turns
    ``<unk>`` into the word ``unk``.  A sample of the first file tells: raw text
    read as pretokenized is mostly ``<unk>`` to a vocabulary that knows its words.
    """
    try:
        with open(files[0], "rb") as f:
            sample = f.read(sample_bytes).decode(vocab.meta.get("encoding", "utf-8"), errors="replace")
    except OSError:
        return None  # reading the corpus reports it
    sample = sample[:sample.rfind("\n") + 1] or sample  # whole lines only
    if vocab.mode == "words":
        if {text.UNK, text.EOS} & set(sample.split()):
            return (f"{files[0]} holds <unk>/<eos> tokens, as Penn-Treebank-style text does, but the "
                    "vocabulary was built without --pretokenized")
        return None
    unk = {}
    for mode in text.MODES:
        ids = vocab.ids(text.tokenize(sample, mode))
        unk[mode] = ids.count(text.UNK_ID) / max(len(ids), 1)
    if unk["words"] + 0.05 < unk["pretokenized"]:
        return (f"{files[0]} looks like plain text ({unk['pretokenized']:.0%} <unk> read as "
                f"pretokenized, {unk['words']:.0%} normalised) but the vocabulary was built with "
                "--pretokenized")
    return None


def read_blocks(path, encoding="utf-8", errors="strict", start=0, end=None):
    """``(text, bytes read, whole)`` for blocks of whole lines of bytes ``[start, end)`` of a file.

    Blocks, not the whole file, so memory stays flat for any corpus size.

    Bytes are read in large pieces and decoded incrementally (a character may
    straddle two pieces); each block ends at its last newline and the rest
    starts the next block.  No newline translation: lines end at ``\\n`` only.
    Text waiting for its newline is held up to ``MAX_LINE`` characters only:
    beyond that it is cut before a space (``whole`` is false for every piece
    but a line's last), so a file without newlines cannot fill memory and no
    word is split; only a run of ``MAX_LINE`` characters without a space is
    cut where it stands.
    """
    try:
        decoder = codecs.getincrementaldecoder(encoding)(errors)
    except LookupError:
        raise UsageError(f"unknown encoding {encoding!r}") from None
    offset, rest, pending = start, "", 0
    try:
        with open(path, "rb") as f:
            f.seek(start)
            while True:
                raw = f.read(_READ_CHUNK if end is None else min(_READ_CHUNK, end - offset))
                try:
                    piece = decoder.decode(raw, final=not raw)
                except UnicodeDecodeError as e:
                    raise UsageError(f"{path} is not valid {encoding} (byte {offset + e.start}); "
                                     "convert it, or pass --errors replace") from None
                offset += len(raw)
                pending += len(raw)
                if not raw:
                    if rest + piece or pending:
                        yield rest + piece, pending, True
                    return
                cut = piece.rfind("\n") + 1
                if cut:
                    yield rest + piece[:cut], pending, True
                    rest, pending = piece[cut:], 0
                else:
                    rest += piece
                while len(rest) > MAX_LINE:
                    cut = rest.rfind(" ", 1, MAX_LINE)
                    cut = cut if cut > 0 else MAX_LINE
                    yield rest[:cut], pending, False
                    rest, pending = rest[cut:], 0
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory, not a file") from None
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from None


# Below this many bytes one process counts faster than starting workers.
PARALLEL_MIN_BYTES = 8 << 20
# Encodings in which byte 0x0A is always a newline, so a file may be cut at any b"\n".
_SPLITTABLE = {"utf-8", "ascii", "latin-1", "iso8859-1", "cp1252"}


def count_tokens(files, mode="words", encoding="utf-8", errors="strict", progress=None,
                 workers=None):
    """Token counts over all files; ``progress(nbytes)`` is called as files are read.

    Counting is CPU-bound (splitting and hashing every word), so a big corpus is
    cut at line boundaries into one contiguous share per core, counted by forked
    worker processes, and the counts summed.  Results travel as JSON over a
    pipe (nothing is pickled) and equal the single-process counts exactly.
    """
    try:
        codec = codecs.lookup(encoding).name
    except LookupError:
        raise UsageError(f"unknown encoding {encoding!r}") from None
    sizes = [os.path.getsize(f) for f in files]
    counter_library()  # loaded (built on a first run) once, before workers fork
    workers = workers or os.cpu_count() or 1
    if (workers < 2 or sum(sizes) < PARALLEL_MIN_BYTES or codec not in _SPLITTABLE
            or "fork" not in multiprocessing.get_all_start_methods()):
        return collections.Counter(_count_ranges([(f, 0, None) for f in files], mode, encoding, errors,
                                                 progress))
    return _count_in_workers(_shares(files, sizes, workers), mode, encoding, errors, progress)


def _count_ranges(ranges, mode, encoding, errors, progress):
    """Token counts of byte ranges of files, keyed by ``str`` (counted as UTF-8 bytes, decoded once)."""
    counts = collections.Counter()
    native = NativeCounter.open()  # the same counts, without a Python object per word
    try:
        for path, start, end in ranges:
            for block, nbytes, whole in read_blocks(path, encoding, errors, start, end):
                if native is None:
                    counts.update(text.count_tokens(block, mode))
                else:
                    native.add(block, mode)
                    if mode == "pretokenized" and text.eos_lines(block):
                        counts[text.EOS.encode()] += text.eos_lines(block)
                if mode == "pretokenized" and not whole:
                    counts[text.EOS.encode()] -= 1  # the line goes on: its <eos> comes with its last piece
                if progress and nbytes:
                    progress(nbytes)
        if native is not None:
            counts.update(native.counts())
    finally:
        if native is not None:
            native.close()
    return {k.decode("utf-8", "surrogatepass"): n for k, n in counts.items()}


def _shares(files, sizes, workers):
    """``workers`` lists of ``(path, start, end)`` byte ranges of about equal size, each cut after a newline."""
    total, shares, share, base = sum(sizes), [], [], 0
    for path, size in zip(files, sizes):
        start = 0
        while start < size:
            goal = total * (len(shares) + 1) // workers  # where the current share should end
            last = len(shares) == workers - 1
            end = size if last or base + size <= goal else _line_end(path, max(goal - base, start))
            share.append((path, start, end))
            start = end
            if base + end >= goal and not last:
                shares.append(share)
                share = []
        base += size
    return [s for s in shares + [share] if s]


def _line_end(path, offset):
    """The offset just after the first newline at or after ``offset`` (or the file's end)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            while piece := f.read(1 << 16):
                newline = piece.find(b"\n")
                if newline >= 0:
                    return offset + newline + 1
                offset += len(piece)
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from None
    return offset


def _count_in_workers(shares, mode, encoding, errors, progress):
    context = multiprocessing.get_context("fork")
    jobs = []
    try:
        for share in shares:
            receive, send = context.Pipe(duplex=False)
            worker = context.Process(target=_worker, args=(share, mode, encoding, errors, send), daemon=True)
            worker.start()
            send.close()
            jobs.append((worker, receive))
        results = [None] * len(jobs)
        waiting = {receive: i for i, (_, receive) in enumerate(jobs)}
        while waiting:
            for receive in multiprocessing.connection.wait(list(waiting)):
                try:
                    message = json.loads(receive.recv_bytes())
                except EOFError:
                    raise RuntimeError("a build-dict worker process died") from None
                if "bytes" in message:
                    if progress:
                        progress(message["bytes"])
                else:
                    results[waiting.pop(receive)] = message
        for message in results:  # the first error in corpus order, as one process would report it
            if "error" in message:
                raise UsageError(message["error"])
        counts = collections.Counter()
        for message in results:
            counts.update(message["counts"])
        return counts
    finally:
        for worker, receive in jobs:
            receive.close()
            if worker.is_alive():
                worker.terminate()
            worker.join()


def _worker(share, mode, encoding, errors, send):
    try:
        message = {"counts": _count_ranges(share, mode, encoding, errors,
                                           lambda n: send.send_bytes(json.dumps({"bytes": n}).encode()))}
    except UsageError as e:
        message = {"error": str(e)}
    send.send_bytes(json.dumps(message).encode())
    send.close()


@dataclass
class Vocabulary:
    """Tokens in id order and their counts; ids are positions in ``tokens``."""

    tokens: list
    counts: list
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.index = {t: i for i, t in enumerate(self.tokens)}

    def __len__(self):
        return len(self.tokens)

    @property
    def mode(self):
        return self.meta.get("mode", "words")

    def ids(self, tokens):
        return [self.index.get(t, text.UNK_ID) for t in tokens]

    @classmethod
    def from_counts(cls, counts, min_count=3, meta=None):
        """Words seen ``<= min_count`` times become ``<unk>`` (the notes' rule)."""
        unk = counts.get(text.UNK, 0) + counts.get(text.PAD, 0)
        kept = []
        for word, n in counts.items():
            if word in text.RESERVED:
                continue
            if n > min_count:
                kept.append((word, n))
            else:
                unk += n
        kept.sort(key=lambda wn: (-wn[1], wn[0]))
        tokens = [text.PAD, text.UNK] + [w for w, _ in kept]
        return cls(tokens, [0, unk] + [n for _, n in kept], dict(meta or {}))

    def save(self, path):
        """Write ``vocab.txt`` and ``vocab.json`` so that a kill at any point leaves a valid pair.

        Two files cannot be renamed at once, so: the new JSON goes to
        ``vocab.json.next``, then ``vocab.txt`` is replaced (the commit point),
        then the JSON.  :meth:`load` finishes a commit that a kill interrupted.
        """
        path = Path(path)
        body = "".join(f"{t}\t{n}\n" for t, n in zip(self.tokens, self.counts))
        meta = dict(self.meta, format=FORMAT_VERSION, size=len(self.tokens),
                    sha256=hashlib.sha256(body.encode("utf-8")).hexdigest())
        pending = pending_meta_path(path)
        write_json(pending, meta)
        try:
            write_text(path, body)
        except BaseException:
            pending.unlink(missing_ok=True)
            raise
        os.replace(pending, meta_path(path))
        self.meta = meta

    @classmethod
    def load(cls, path):
        """Read and validate a vocabulary; a hand-broken file is a UsageError, not a crash."""
        path = Path(path)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise UsageError(f"vocabulary not found: {path} (run build-dict first)") from None
        except IsADirectoryError:
            raise UsageError(f"vocabulary {path} is a directory, not a file") from None
        except OSError as e:
            raise UsageError(f"cannot read {path}: {e.strerror or e}") from None
        digest = hashlib.sha256(raw).hexdigest()
        pending = pending_meta_path(path)
        if pending.is_file() and read_json(pending, "vocabulary settings").get("sha256") == digest:
            os.replace(pending, meta_path(path))  # finish a save that was killed half-way
        meta = read_json(meta_path(path), "vocabulary settings")
        if digest != meta.get("sha256"):
            raise UsageError(
                f"{path} does not match {meta_path(path)} (edited by hand?); run build-dict again"
            )
        tokens, counts = [], []
        try:
            lines = raw.decode("utf-8").splitlines()
        except UnicodeDecodeError:
            raise UsageError(f"{path} is not valid UTF-8; run build-dict again") from None
        for number, line in enumerate(lines, 1):
            token, _, count = line.partition("\t")
            if not token or not count.isdigit() or any(c.isspace() for c in token):
                raise UsageError(f"{path}:{number}: expected 'token<TAB>count'")
            tokens.append(token)
            counts.append(int(count))
        if tokens[:2] != list(text.RESERVED) or len(set(tokens)) != len(tokens):
            raise UsageError(f"{path}: must start with {text.PAD}, {text.UNK} and list each token once")
        if meta.get("mode") not in text.MODES:
            raise UsageError(f"{meta_path(path)}: unknown mode {meta.get('mode')!r}")
        return cls(tokens, counts, meta)


def meta_path(vocab_path):
    return Path(vocab_path).with_suffix(".json")


def pending_meta_path(vocab_path):
    return Path(vocab_path).with_suffix(".json.next")


def build_vocabulary(pattern, min_count=3, mode="words", encoding="utf-8", errors="strict",
                     progress=None):
    """Count the corpus and apply the unknown-token threshold."""
    if min_count < 0:
        raise UsageError("--min-count must be 0 or more")
    files = find_files(pattern)
    counts = count_tokens(files, mode, encoding, errors, progress)
    total = sum(counts.values())
    if total == 0:
        raise UsageError(f"the corpus {pattern!r} has no words ({len(files)} file(s), all empty after normalisation)")
    vocab = Vocabulary.from_counts(counts, min_count, {
        "mode": mode, "min_count": min_count, "corpus": pattern, "files": files,
        "encoding": encoding, "errors": errors, "tokens": total,
    })
    if len(vocab) <= len(text.RESERVED):
        raise UsageError(
            f"every word in {pattern!r} is seen {min_count} times or fewer, so all would be {text.UNK}; "
            "use a bigger corpus or a lower --min-count"
        )
    vocab.meta["unk_tokens"] = vocab.counts[text.UNK_ID]
    return vocab

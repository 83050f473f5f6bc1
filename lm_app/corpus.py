"""Walking the corpus, counting words and the vocabulary file (no TensorFlow here).

On disk the vocabulary is ``vocab.txt`` (UTF-8, ``token<TAB>count`` per line, id =
line number, ``<pad>`` = 0 and ``<unk>`` = 1) and ``vocab.json`` beside it with
the settings that made it.  Plain text and JSON, never pickle: loading a pickle
runs arbitrary code.
"""
import collections
import glob
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from . import text
from .atomic import read_json, write_json, write_text
from .errors import UsageError

FORMAT_VERSION = 1
_READ_CHUNK = 1 << 22  # characters per normalisation call: large enough to amortise, small enough to stream


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
    if not files:
        if matches:
            raise UsageError(f"corpus pattern {pattern!r} matches only directories, no files")
        raise UsageError(f"no files match the corpus pattern {pattern!r}")
    return files


def read_chunks(path, encoding="utf-8", errors="strict"):
    """Stream a file as blocks of whole lines, so memory stays flat for any corpus size."""
    try:
        with open(path, encoding=encoding, errors=errors, newline="\n") as f:
            while True:
                lines = f.readlines(_READ_CHUNK)
                if not lines:
                    return
                yield "".join(lines)
    except UnicodeDecodeError as e:
        raise UsageError(
            f"{path} is not valid {encoding} (byte {e.start}); "
            "convert it, or pass --errors replace"
        ) from None
    except LookupError:
        raise UsageError(f"unknown encoding {encoding!r}") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory, not a file") from None
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from None


def count_tokens(files, mode="words", encoding="utf-8", errors="strict", progress=None):
    """Token counts over all files; ``progress(nbytes)`` is called as files are read."""
    counts = collections.Counter()
    for path in files:
        for block in read_chunks(path, encoding, errors):
            counts.update(text.tokenize(block, mode))
            if progress:
                progress(len(block))
    return counts


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

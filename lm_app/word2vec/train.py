"""The word2vec loop: the corpus as ids once, then epochs of large batches, resumable after Ctrl-C or ``kill -9``.

Why an id file: tokenising the corpus costs more than training on it, so the
first run writes its in-vocabulary ids once (streamed, file by file: memory
stays flat in corpus size) into the state folder, ``<out>.state``, beside the
output folder (which is replaced whole at the end).  Each epoch reads them back
in batches of whole sentences (``batch_words``, large so Python's share of the
time stays small).  Words that are ``<unk>`` or ``<pad>`` to the vocabulary are
dropped, as gensim drops words outside its vocabulary; sentences are the
stream cut at every file end and every 10,000 words (gensim's limit).

Each batch goes to the native op (``lm_app_word2vec``: Hogwild threads over
sentences, tables updated in place) or, without a compiler, to
:class:`.model.PortableStep`.  The state folder holds ``run.json`` (the
settings, the vocabulary's hash and the corpus's fingerprint), the id file and
a ``tf.train.Checkpoint`` of both tables with the progress (epoch, sentence,
words done); a batch's random numbers depend only on ``(seed, epoch,
sentence)``, so a resumed run continues the same streams.
"""
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from .. import native
from ..atomic import FolderLock, atomic_path, read_json, recover, remove_stale, write_json
from ..checkpoint import corpus_change, fingerprint, restore
from ..config import flag
from ..corpus import Vocabulary, find_files
from ..data import file_ids, lookup_table
from ..errors import UsageError
from ..process import interrupts_held
from ..text import RESERVED
from . import sampling
from .config import Word2VecConfig
from .model import PortableStep, Word2VecTables
from .outputs import write_outputs

ID_FILE, ID_RECORD, RUN = "ids.int32", "ids.json", "run.json"


def state_dir(out):
    return Path(out).with_name(Path(out).name + ".state")


def train(cfg, resume=False, fresh=False, given=(), verbose=None, log=print, on_batch=None):
    """Train (or resume) and write the outputs; returns the words, their vectors and the speed.

    ``given`` names the flags typed: resuming refuses one that changes the run
    (``--epochs`` may).  ``on_batch(progress)`` is called after each batch
    (the tests interrupt a run there as Ctrl-C would).
    """
    if not resume:
        cfg.validate()
    out = Path(cfg.out)
    recover(out)
    with FolderLock(out):
        state = state_dir(out)
        state.mkdir(parents=True, exist_ok=True)
        remove_stale(state)
        cfg, vocab = prepare(cfg, state, resume, fresh, given, log)
        files = find_files(cfg.corpus)
        ids, ends = id_stream(files, vocab, state, log)
        if not resume:  # only now: a corpus without a word must not leave an unfinished run behind
            shutil.rmtree(state / "checkpoints", ignore_errors=True)
            write_json(state / RUN, {"config": dataclasses.asdict(cfg), "vocab_sha256": vocab.meta["sha256"],
                                     "corpus_files": fingerprint(files), "finished": False})
        return _train(cfg, vocab, ids, ends, state, verbose, log, on_batch)


def prepare(cfg, state, resume, fresh, given, log):
    """The settings and vocabulary to train with: the saved run's when resuming, else the given ones."""
    saved = state / RUN
    if resume and fresh:
        raise UsageError("--resume continues the run in --out and --fresh discards it: give one")
    run = read_json(saved, "saved run settings") if saved.is_file() else None
    if resume:
        if run is None or run.get("finished"):
            raise UsageError(f"nothing to resume for {cfg.out} ({'the run finished' if run else f'no {saved}'}); "
                             "run word2vec without --resume")
        kept = Word2VecConfig.from_dict(dict(run["config"], out=cfg.out))
        for name in sorted(set(given) - {"out", "epochs"}):
            if getattr(cfg, name) != getattr(kept, name):
                raise UsageError(f"{flag(name)} {getattr(cfg, name)} differs from the run in {cfg.out} "
                                 f"({flag(name)} {getattr(kept, name)}): --resume keeps the settings a run "
                                 "started with; --fresh starts again")
        if "epochs" in given:
            kept.epochs = cfg.epochs
        kept.validate()
        vocab = Vocabulary.load(kept.vocab)
        change = corpus_change(run["corpus_files"], fingerprint(find_files(kept.corpus)))
        if vocab.meta["sha256"] != run["vocab_sha256"] or change:
            raise UsageError(f"the {'corpus' if change else 'vocabulary'} changed since the run in {cfg.out} "
                             f"started{f' ({change})' if change else ''}; --fresh starts again")
        log(f"resuming the run in {cfg.out}")
        return kept, vocab
    if run and not run.get("finished") and not fresh:
        raise UsageError(f"{cfg.out} has an unfinished run: add --resume to continue it, "
                         "or --fresh to discard it")
    return cfg, Vocabulary.load(cfg.vocab)


class IdFile:
    """The id file, read slice by slice.

    Not a memmap: the pages a memmap has touched stay in the process's
    resident memory, which then grows with the corpus.
    """

    def __init__(self, path):
        self.path = path

    def __getitem__(self, part):
        return np.fromfile(self.path, "<i4", count=part.stop - part.start, offset=4 * part.start)


def id_stream(files, vocab, state, log):
    """The corpus's in-vocabulary ids (an :class:`IdFile`) and where each file ends in them.

    Written on the first run and kept while the corpus and the vocabulary stay
    as they were (their fingerprint and hash are recorded beside it).  One
    ``tf.data`` pipeline reads every file: a pipeline per file would leave a
    graph per file behind, and memory would grow with the number of files.
    """
    key = {"vocab_sha256": vocab.meta["sha256"], "files": fingerprint(files)}
    record = state / ID_RECORD
    path = state / ID_FILE
    stored = read_json(record, "id record") if record.is_file() else {}
    fresh = {k: stored.get(k) for k in key} == key and path.is_file() \
        and path.stat().st_size == 4 * stored.get("words", -1)
    if not fresh:
        started = time.perf_counter()
        table, per_file = lookup_table(vocab), np.zeros(len(files), np.int64)
        stream = tf.data.Dataset.from_tensor_slices([str(f) for f in files]).enumerate().flat_map(
            lambda i, name: file_ids(name, table, vocab).map(lambda ids: (i, ids)))
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            for i, ids in stream:
                ids = ids.numpy()
                ids = ids[ids >= len(RESERVED)]  # <pad> and <unk> are not words to word2vec
                f.write(ids.astype("<i4").tobytes())
                per_file[int(i)] += len(ids)
        ends = np.cumsum(per_file).tolist()
        stored = dict(key, words=int(sum(per_file)), ends=ends, seconds=time.perf_counter() - started)
        write_json(record, stored)
        log(f"read the corpus once: {stored['words']:,} words of the vocabulary in {stored['seconds']:.1f} s")
    if not stored["words"]:
        raise UsageError(f"the corpus has no word of the vocabulary ({len(files)} file(s))")
    return IdFile(path), stored["ends"]


def tables_for(vocab, cfg):
    """gensim's subsampling and noise tables; ``<pad>`` and ``<unk>`` count 0 (never in the stream)."""
    counts = np.asarray(vocab.counts, np.float64)
    counts[:len(RESERVED)] = 0
    return sampling.sample_int(counts, cfg.sample), sampling.cum_table(counts), counts


def batches(bounds, first, limit):
    """``(first sentence, end sentence)`` of each batch: whole sentences, about ``limit`` words each."""
    while first < len(bounds) - 1:
        end = int(np.searchsorted(bounds, bounds[first] + limit, side="right")) - 1
        end = max(end, first + 1)
        yield first, end
        first = end


def _train(cfg, vocab, ids, ends, state, verbose, log, on_batch):
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    ops = native.ops()
    sample_int, cum, _ = tables_for(vocab, cfg)
    tables = Word2VecTables(len(vocab), cfg.dim, seed=cfg.seed)
    cbow = cfg.mode == "cbow"
    if ops is None:
        step = PortableStep(tables, sample_int / 2**32, cum, cbow, cfg.window, cfg.negative)
    progress_var = tf.Variable(json.dumps({"epoch": 0, "sentence": 0, "words": 0, "seconds": 0.0}))
    checkpoint = tf.train.Checkpoint(progress=progress_var, **tables.variables_by_name())
    manager = tf.train.CheckpointManager(checkpoint, str(state / "checkpoints"), max_to_keep=2)
    restore(manager, log)
    p = json.loads(progress_var.numpy().decode())
    bounds = sampling.sentences(ends)
    n_words = int(bounds[-1])
    total = n_words * cfg.epochs
    log(f"{cfg.mode}: {n_words:,} words an epoch, vocabulary {len(vocab) - len(RESERVED):,}, "
        f"{'native kernel' if ops is not None else 'portable TensorFlow path (slower)'}, "
        f"{cfg.threads} thread(s)")

    def save(progress):
        progress_var.assign(json.dumps(progress))
        try:
            manager.save()
        except tf.errors.OpError as e:
            raise UsageError(f"cannot save the training state in {state}: {e.message}") from None

    try:
        while p["epoch"] < cfg.epochs:
            epoch = p["epoch"]
            if verbose == 2:
                print(f"Epoch {epoch + 1}/{cfg.epochs}")
            bar = keras.utils.Progbar(n_words, verbose=verbose, stateful_metrics=["words/s"])
            epoch_started, epoch_words = time.perf_counter(), 0
            for n, (first, end) in enumerate(batches(bounds, p["sentence"], cfg.batch_words), 1):
                started = time.perf_counter()  # the batch's reading counts as training time, its saving not
                start, stop = int(bounds[first]), int(bounds[end])
                batch, splits = np.asarray(ids[start:stop]), bounds[first:end + 1] - start
                alpha = [sampling.learning_rate(cfg.learning_rate, cfg.min_learning_rate, p["words"] + w, total)
                         for w in (0, stop - start)]
                with interrupts_held():  # the tables and the progress record change together
                    if ops is not None:
                        ops.lm_app_word2vec(tables.syn0.value.handle, tables.syn1neg.value.handle, batch, splits,
                                            sample_int, cum, np.float32(alpha), [cfg.seed, epoch, first],
                                            cbow=cbow, window=cfg.window, negative=cfg.negative,
                                            threads=cfg.threads)
                    else:
                        step(batch, splits, alpha, [cfg.seed, sampling.sentence_seed(cfg.seed, epoch, first)])
                    seconds = time.perf_counter() - started
                    p = dict(p, sentence=end, words=p["words"] + stop - start, seconds=p["seconds"] + seconds)
                epoch_words += stop - start
                if n % cfg.save_every == 0:
                    save(p)
                if on_batch:
                    on_batch(p)
                bar.update(stop, [("words/s", epoch_words / max(time.perf_counter() - epoch_started, 1e-9))])
            p = dict(p, epoch=epoch + 1, sentence=0)
            save(p)
    except KeyboardInterrupt:
        save(p)
        log(f"\ninterrupted: state saved in {state}; `word2vec --resume` continues")
        raise
    speed = p["words"] / max(p["seconds"], 1e-9)
    log(f"trained {p['words']:,} words in {p['seconds']:.1f} s: {speed:,.0f} words/s")
    words = vocab.tokens[len(RESERVED):]
    vectors = tables.syn0.numpy()[len(RESERVED):]
    meta = {"config": dataclasses.asdict(cfg), "words": p["words"], "seconds": p["seconds"], "words_per_second": speed,
            "native": ops is not None}
    with atomic_path(cfg.out, directory=True) as tmp:
        write_outputs(tmp, words, vectors, meta)
    run = state / RUN
    write_json(run, dict(read_json(run, "saved run settings"), finished=True))
    log(f"wrote the vectors to {cfg.out}")
    return {"words": words, "vectors": vectors, "words_per_second": speed, "seconds": p["seconds"],
            "trained_words": p["words"], "native": ops is not None}

"""The training curves as a PNG: a person reads a curve faster than a table of numbers."""
import time


def pyplot():
    """matplotlib's pyplot on the Agg backend, which draws PNGs without a display."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def save_png(fig, path):
    """Lay ``fig`` out, write it to ``path`` atomically as a PNG, and free it."""
    from .atomic import atomic_path

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    pyplot().close(fig)


def curves_png(history, path):
    """Loss and accuracy per epoch, training against validation, written to ``path`` as a PNG."""
    plt = pyplot()

    epochs = range(1, len(history.get("loss", [])) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("loss", "training"), ("val_loss", "validation")):
        if key in history:
            ax_loss.plot(epochs, history[key], marker="o", label=label)
    for key, label in (("accuracy", "training"), ("val_accuracy", "validation"),
                       ("val_top5", "validation top-5")):
        if key in history:
            ax_acc.plot(epochs, history[key], marker="o", label=label)
    ax_loss.set(title="cross-entropy per word", xlabel="epoch", ylabel="nats")
    ax_acc.set(title="next-word accuracy", xlabel="epoch", ylabel="share", ylim=(0, 1))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    save_png(fig, path)


class Curves:
    """``curves.png`` of a run, redrawn at an epoch end only while drawing stays a small share of the run.

    A draw (matplotlib's layout and PNG encoding) costs a fixed fraction of a
    second: noise beside real epochs, but more than the epochs of a tiny run,
    which would then spend most of its time drawing a curve nobody watches.
    :meth:`final` always draws, so the finished (or interrupted) run's curve is whole.
    """

    def __init__(self, path, share=0.05, first_guess=0.5):
        self.path, self.share = path, share
        self.cost = first_guess  # seconds per draw, re-measured at each draw
        self.since = time.perf_counter()
        self.drawn = None

    def epoch_end(self, history):
        if time.perf_counter() - self.since >= self.cost / self.share:
            self.draw(history)

    def final(self, history):
        if history.get("loss") and history != self.drawn:
            self.draw(history)

    def draw(self, history):
        started = time.perf_counter()
        curves_png(history, self.path)
        self.since = time.perf_counter()
        self.cost, self.drawn = self.since - started, {k: list(v) for k, v in history.items()}


def free_run_png(path, predicted, truth, title, data_tail=None):
    """The sine-wave examples' plot: a free-running prediction against the true wave.

    ``data_tail``: the last values trained on, drawn before step 0.
    """
    import numpy as np

    fig, ax = pyplot().subplots(figsize=(10, 4))
    if data_tail is not None:
        ax.plot(np.arange(-len(data_tail), 0), data_tail, ".", markersize=3, label="data (end)")
    ax.plot(truth, label="true sine", linewidth=2)
    ax.plot(predicted, "--", label="free-running prediction")
    ax.set(xlabel="steps after the data", ylabel="value",
           title=f"{title} (MAE {np.mean(np.abs(np.subtract(predicted, truth))):.4f})")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    save_png(fig, path)
